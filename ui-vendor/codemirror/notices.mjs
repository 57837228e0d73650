// Writes THIRD_PARTY_NOTICES.txt for the bundle: every runtime package of package-lock.json
// (name, version, licence) and the licence texts from node_modules/*/LICENSE, grouped by
// identical text. Deterministic: sorted by name, no dates. Called by build.sh:
//   node notices.mjs META.json OUTPUT.txt   (META.json: esbuild's --metafile of the build)
import { readFileSync, writeFileSync, existsSync } from "node:fs";

const [metaPath, outPath] = process.argv.slice(2);
const lock = JSON.parse(readFileSync("package-lock.json", "utf8"));
const meta = JSON.parse(readFileSync(metaPath, "utf8"));
const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const pkgOf = (path) => {
  const rest = path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length).split("/");
  return rest[0].startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0];
};

// Packages with code in the output, from the metafile.
const withCode = new Set();
for (const output of Object.values(meta.outputs)) {
  for (const [path, info] of Object.entries(output.inputs)) {
    if (path.includes("node_modules/") && info.bytesInOutput > 0) withCode.add(pkgOf(path));
  }
}

const packages = [];
for (const [key, entry] of Object.entries(lock.packages)) {
  if (!key.startsWith("node_modules/") || entry.dev) continue;
  const name = pkgOf(key);
  const dir = `${key}`;
  const manifest = JSON.parse(readFileSync(`${dir}/package.json`, "utf8"));
  if (manifest.version !== entry.version) {
    throw new Error(`${name}: node_modules has ${manifest.version}, the lockfile ${entry.version}; run npm ci`);
  }
  const licenceFile = ["LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "license"]
    .map((f) => `${dir}/${f}`).find((f) => existsSync(f));
  if (!licenceFile) throw new Error(`${name}: no LICENSE file in ${dir}`);
  const text = readFileSync(licenceFile, "utf8").replace(/\r\n/g, "\n").trim();
  packages.push({ name, version: entry.version, licence: manifest.license, text });
}
packages.sort(byName);

const listed = new Set(packages.map((p) => p.name));
for (const name of withCode) {
  if (!listed.has(name)) throw new Error(`${name} is in the bundle but not a runtime package of the lockfile`);
}

const lines = [
  "Third-party software in hook-editor.js",
  "",
  "hook-editor.js is CodeMirror 6 bundled by ui-vendor/codemirror/build.sh (esbuild) from",
  "these npm packages, as locked in ui-vendor/codemirror/package-lock.json:",
  "",
];
const width = Math.max(...packages.map((p) => `${p.name} ${p.version}`.length));
for (const p of packages) {
  const note = withCode.has(p.name) ? "" : "  (dependency with no code in the bundle)";
  lines.push(`  ${`${p.name} ${p.version}`.padEnd(width)}  ${p.licence}${note}`);
}
const groups = new Map();
for (const p of packages) {
  if (!groups.has(p.text)) groups.set(p.text, []);
  groups.get(p.text).push(p.name);
}
for (const [text, names] of groups) {
  lines.push("", "-".repeat(78), `Licence of ${names.join(", ")}:`, "", text);
}
writeFileSync(outPath, lines.join("\n") + "\n");
