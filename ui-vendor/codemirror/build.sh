#!/usr/bin/env bash
# Rebuilds hookengine/ui/static/vendor/hook-editor.js and THIRD_PARTY_NOTICES.txt from the
# locked npm packages. The only place Node is used; installing hookengine needs none of it.
# Usage: build.sh [OUTPUT.js]   (the notices are written next to OUTPUT.js)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../hookengine/ui/static/vendor/hook-editor.js}
outdir=$(cd "$(dirname "$out")" && pwd)
out=$outdir/$(basename "$out")
cd "$here"
# Exactly the lockfile's packages. Scripts off: esbuild's postinstall only swaps its JS
# launcher for the native binary, which arrives anyway as an optional dependency.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
./node_modules/.bin/esbuild entry.js --bundle --minify --format=esm --target=es2020 \
  --legal-comments=none --log-level=warning --metafile="$tmp/meta.json" --outfile="$out"
node notices.mjs "$tmp/meta.json" "$outdir/THIRD_PARTY_NOTICES.txt"
