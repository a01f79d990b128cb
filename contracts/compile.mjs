// Compile every contracts/**/*.sol with solc (standard JSON) and write abis/<ContractName>.json.
// Run from anywhere: `node contracts/compile.mjs`. Output is deterministic (sorted keys, 2-space indent,
// trailing newline); stale artifacts of contracts that no longer exist are deleted.
// The compiler version and every setting that shapes the bytecode live in contracts/compiler.json (not
// here), so the build hash covers them: a settings or version change makes every artifact stale. Each
// artifact's hash covers only its own compilation unit, so an edit to one contract's sources leaves the
// others' artifacts fresh (and their files unchanged).
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync, mkdirSync, unlinkSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

const contractsDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.dirname(contractsDir);
const abisDir = path.join(repoRoot, "abis");

function listSol(dir, rel = "") {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const relPath = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...listSol(path.join(dir, entry.name), relPath));
    else if (entry.isFile() && entry.name.endsWith(".sol")) out.push(relPath);
  }
  return out;
}

// Paths sort by POSIX relative path, comparing code units like Python's str sort (ASCII paths).
const byPath = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const COMPILER_FILE = "compiler.json";
const sol = listSol(contractsDir).sort(byPath);
if (sol.length === 0) {
  console.error("no .sol files under contracts/");
  process.exit(1);
}
// Every input is read once: solc compiles, and the hashes cover, the same bytes.
const raw = {};
for (const rel of [...sol, COMPILER_FILE]) raw[rel] = readFileSync(path.join(contractsDir, rel));
const compilerConfig = JSON.parse(raw[COMPILER_FILE].toString("utf8"));
if (!solc.version().startsWith(`${compilerConfig.solc}+`)) {
  console.error(`installed solc ${solc.version()} is not the ${compilerConfig.solc} pinned in contracts/${COMPILER_FILE}`);
  process.exit(1);
}

const sources = {};
for (const rel of sol) sources[rel] = { content: raw[rel].toString("utf8") };

// An artifact's sourceHash: sha256 over `relpath \0 content \0` for each source of its compilation unit
// (the contract's file and everything it imports, from solc's metadata) and compiler.json, sorted by
// path; the artifact lists those sources. Identical to keeper.chain.artifacts.source_hash(sources).
function sourceHashOf(rels) {
  const hash = createHash("sha256");
  for (const rel of [...rels, COMPILER_FILE].sort(byPath)) {
    if (!raw[rel]) throw new Error(`source ${rel} is not a file under contracts/`);
    hash.update(Buffer.from(rel, "utf8"));
    hash.update(Buffer.from([0]));
    hash.update(raw[rel]);
    hash.update(Buffer.from([0]));
  }
  return hash.digest("hex");
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    ...compilerConfig.settings,
    outputSelection: { "*": { "*": ["abi", "metadata", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

function findImports(p) {
  const full = path.join(contractsDir, p);
  if (existsSync(full)) return { contents: readFileSync(full, "utf8") };
  return { error: `import not found: ${p}` };
}

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) {
  if (e.severity !== "error" && e.errorCode !== "5574") console.error(e.formattedMessage);
}
if (errors.length > 0) {
  for (const e of errors) console.error(e.formattedMessage);
  console.error(`compilation failed: ${errors.length} error(s)`);
  process.exit(1);
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key]);
    return out;
  }
  return value;
}

mkdirSync(abisDir, { recursive: true });
const written = new Set();
const compiler = `solc-${solc.version()}`;
for (const rel of Object.keys(output.contracts || {}).sort()) {
  for (const [name, artifact] of Object.entries(output.contracts[rel]).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const bytecode = artifact.evm.bytecode.object;
    if (!bytecode) continue; // interfaces and abstract contracts
    if (written.has(name)) {
      console.error(`duplicate contract name ${name} (${rel})`);
      process.exit(1);
    }
    written.add(name);
    const unit = Object.keys(JSON.parse(artifact.metadata).sources).sort(byPath);
    const json = sortKeys({
      contractName: name,
      abi: artifact.abi,
      bytecode: `0x${bytecode}`,
      deployedBytecode: `0x${artifact.evm.deployedBytecode.object}`,
      sources: unit,
      sourceHash: sourceHashOf(unit),
      compiler,
    });
    writeFileSync(path.join(abisDir, `${name}.json`), `${JSON.stringify(json, null, 1)}\n`);
  }
}
for (const file of readdirSync(abisDir)) {
  if (file.endsWith(".json") && !written.has(file.slice(0, -5))) unlinkSync(path.join(abisDir, file));
}
console.log(`compiled ${written.size} contracts (${sol.length} sources) into abis/`);
