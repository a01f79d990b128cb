// Compile every contracts/**/*.sol with solc (standard JSON) and write abis/<ContractName>.json.
// Run from anywhere: `node contracts/compile.mjs`. Output is deterministic (sorted keys, 2-space indent,
// trailing newline); stale artifacts of contracts that no longer exist are deleted.
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

// Sort by POSIX relative path, comparing code units like Python's str sort (ASCII paths).
const files = listSol(contractsDir).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
if (files.length === 0) {
  console.error("no .sol files under contracts/");
  process.exit(1);
}

// sha256 over `relpath \0 content \0` for every file: identical to keeper.chain.artifacts.source_hash().
const hash = createHash("sha256");
const sources = {};
for (const rel of files) {
  const content = readFileSync(path.join(contractsDir, rel));
  hash.update(Buffer.from(rel, "utf8"));
  hash.update(Buffer.from([0]));
  hash.update(content);
  hash.update(Buffer.from([0]));
  sources[rel] = { content: content.toString("utf8") };
}
const sourceHash = hash.digest("hex");

const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    viaIR: false, // not needed (no stack-too-deep); keeps compilation fast
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
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
    const json = sortKeys({
      contractName: name,
      abi: artifact.abi,
      bytecode: `0x${bytecode}`,
      deployedBytecode: `0x${artifact.evm.deployedBytecode.object}`,
      sourceHash,
      compiler,
    });
    writeFileSync(path.join(abisDir, `${name}.json`), `${JSON.stringify(json, null, 1)}\n`);
  }
}
for (const file of readdirSync(abisDir)) {
  if (file.endsWith(".json") && !written.has(file.slice(0, -5))) unlinkSync(path.join(abisDir, file));
}
console.log(`compiled ${written.size} contracts (${files.length} sources) into abis/, sourceHash ${sourceHash}`);
