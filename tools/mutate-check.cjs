#!/usr/bin/env node
// The type-check screen of tools/mutate.py: one long-lived solcjs (the project's compiler, the npm
// `solc` package) that tells, for each mutant, whether it passes the compiler's parsing and analysis.
// A mutant it refuses cannot compile, so it never costs a full `ape compile --force`; every mutant it
// accepts still gets that full rebuild before its bytecode is compared and its tests are run.
//
// Protocol: one JSON object per stdin line, {"id": ..., "path": "contracts/X.sol", "content": "..."}
// (the file replaced for this check; every other contract is read from disk under the project root);
// one JSON line back per request, {"id": ..., "errors": ["first error", ...]} (empty: it type-checks).
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');

const root = path.resolve(__dirname, '..');
const solc = require(path.join(root, 'node_modules', 'solc'));
const OPENZEPPELIN = '@openzeppelin/contracts/';

function readImport(importPath) {
  const candidates = importPath.startsWith(OPENZEPPELIN)
    ? [path.join(root, 'node_modules', importPath)]
    : [path.join(root, importPath)];
  for (const candidate of candidates) {
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, 'utf8') };
  }
  return { error: `not found: ${importPath}` };
}

// Every contract of the project, so a change to a library is checked where it is used too.
function projectSources(dir = 'contracts', found = []) {
  for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const relative = path.posix.join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== '.cache') projectSources(relative, found);
    else if (entry.isFile() && entry.name.endsWith('.sol')) found.push(relative);
  }
  return found;
}

function check(request) {
  const sources = {};
  for (const file of projectSources()) sources[file] = { content: fs.readFileSync(path.join(root, file), 'utf8') };
  sources[request.path] = { content: request.content };
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      evmVersion: 'london',
      // The ABI needs the full analysis (names, types, overrides) and no code generation.
      outputSelection: { '*': { '*': ['abi'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: readImport }));
  return (output.errors || [])
    .filter((e) => e.severity === 'error')
    .map((e) => `${e.type}: ${e.message}`);
}

const lines = readline.createInterface({ input: process.stdin, terminal: false });
lines.on('line', (line) => {
  if (!line.trim()) return;
  const request = JSON.parse(line);
  let errors;
  try {
    errors = check(request);
  } catch (err) {
    errors = [`check failed: ${err.message}`];
  }
  process.stdout.write(JSON.stringify({ id: request.id, errors }) + '\n');
});
