"""The committed CodeMirror bundle of the Hook editor: small, CSP-clean, its licences noticed,
and rebuilt byte for byte from ui-vendor/codemirror when npm can reach its registry."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "ui-vendor" / "codemirror"
VENDOR = ROOT / "hookengine" / "ui" / "static" / "vendor"
BUNDLE = VENDOR / "hook-editor.js"
NOTICES = VENDOR / "THIRD_PARTY_NOTICES.txt"
MAX_GZIP_BYTES = 200_000
API = {"pythonEditor", "jsonEditor", "showProblems", "getText", "setText", "focus"}
# Namespace names CodeMirror passes to createElementNS/setAttributeNS: never fetched.
NAMESPACE_URLS = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink",
                  "http://www.w3.org/XML/1998/namespace", "http://www.w3.org/2000/xmlns/"}
BUNDLED = re.compile(r"codemirror|@codemirror/.+|@lezer/.+|style-mod|w3c-keyname|crelt|@marijn/.+")


def bundled_packages() -> dict[str, str]:
    """Name -> version of the lockfile's packages that end up in the bundle."""
    lock = json.loads((RECIPE / "package-lock.json").read_text())
    packages = {}
    for key, entry in lock["packages"].items():
        name = key.rpartition("node_modules/")[2]
        if key and BUNDLED.fullmatch(name):
            packages[name] = entry["version"]
    return packages


def test_bundle_is_committed_and_small():
    raw = BUNDLE.read_bytes()
    size = len(gzip.compress(raw, compresslevel=9, mtime=0))
    assert size < MAX_GZIP_BYTES, f"hook-editor.js is {size:,} B gzipped ({len(raw):,} B raw)"


def test_bundle_needs_no_eval_and_fetches_nothing():
    text = BUNDLE.read_text()
    for construct in ("eval(", "new Function"):
        assert construct not in text, f"{construct!r} needs 'unsafe-eval' in the page's CSP"
    assert not re.search(r"\bimport\s*\(", text), "a dynamic import() would load another file"
    urls = set(re.findall(r"https?://[^\s\"'`)]+", text))
    assert urls <= NAMESPACE_URLS, f"URLs other than XML namespaces: {sorted(urls - NAMESPACE_URLS)}"


def test_bundle_exports_exactly_the_editor_api():
    exports = re.search(r"export\s*\{([^}]*)\};?\s*$", BUNDLE.read_text())
    assert exports, "hook-editor.js does not end with an export list"
    names = {part.split(" as ")[-1].strip() for part in exports.group(1).split(",")}
    assert names == API


def test_package_json_pins_exact_versions():
    manifest = json.loads((RECIPE / "package.json").read_text())
    pins = {**manifest["dependencies"], **manifest["devDependencies"]}
    loose = {name: v for name, v in pins.items() if not re.fullmatch(r"\d+\.\d+\.\d+", v)}
    assert not loose, f"not pinned to one version: {loose}"


def test_notices_name_every_bundled_package():
    notices = NOTICES.read_text()
    packages = bundled_packages()
    assert "codemirror" in packages and "@codemirror/view" in packages
    missing = [f"{name} {version}" for name, version in sorted(packages.items())
               if not re.search(rf"^\s*{re.escape(name)} {re.escape(version)}\s", notices, re.M)]
    assert not missing, f"THIRD_PARTY_NOTICES.txt lacks {missing}"
    assert "Copyright (C) 2018-2021 by Marijn Haverbeke" in notices
    assert "Permission is hereby granted, free of charge" in notices


def npm_unavailable() -> str | None:
    """Why the bundle cannot be rebuilt here, or None when it can."""
    if shutil.which("npm") is None:
        return "npm is not on PATH"
    try:
        subprocess.run(["npm", "ping"], cwd=RECIPE, capture_output=True, timeout=5, check=True)
    except subprocess.TimeoutExpired:
        return "the npm registry did not answer `npm ping` within 5 s"
    except subprocess.CalledProcessError as error:
        return f"`npm ping` failed: {error.stderr.decode(errors='replace').strip()[-200:]}"
    return None


def test_rebuild_is_byte_identical(tmp_path):
    reason = npm_unavailable()
    if reason:
        pytest.skip(f"cannot rebuild hook-editor.js: {reason}")
    recipe = tmp_path / "codemirror"
    shutil.copytree(RECIPE, recipe, ignore=shutil.ignore_patterns("node_modules"))
    out = tmp_path / "out"
    out.mkdir()
    build = subprocess.run([str(recipe / "build.sh"), str(out / "hook-editor.js")],
                           capture_output=True, text=True, timeout=60)
    assert build.returncode == 0, build.stdout + build.stderr
    assert (out / "hook-editor.js").read_bytes() == BUNDLE.read_bytes(), \
        "hook-editor.js differs from a rebuild: run ui-vendor/codemirror/build.sh and commit"
    assert (out / "THIRD_PARTY_NOTICES.txt").read_bytes() == NOTICES.read_bytes(), \
        "THIRD_PARTY_NOTICES.txt differs from a rebuild: run ui-vendor/codemirror/build.sh"
