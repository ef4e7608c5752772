#!/usr/bin/env node
// A native-solc-compatible command line over the npm `solc` package (solcjs, a wasm build of the
// same compiler), so that py-solc-x and ape-solidity compile with no network.
//
// Answers what they, and static analysers (crytic-compile / Slither), ask of a `solc` binary:
//   --version                      in the native format (without loading the 9.6 MB wasm)
//   --help                         a usage text that names --standard-json and --combined-json
//   --standard-json [paths...]     standard JSON on stdin -> standard JSON on stdout
//   FILE.sol... [a=b...] --combined-json LIST [--optimize] [--optimize-runs N] [--evm-version V]
//                                  the legacy combined-JSON output, built from a standard-JSON run
// Imports not given inline are read from --base-path, each --include-path, and the working folder.
//
// tools/install-solc.sh installs a shim that runs this file as $SOLCX_BINARY_PATH/solc-v<version>.
'use strict';

const fs = require('fs');
const path = require('path');

const SOLC_MODULE = process.env.RXCHAIN_SOLC_MODULE || 'solc';
const FULL_VERSION = process.env.RXCHAIN_SOLC_FULL_VERSION || '';

function printVersion() {
  const full = FULL_VERSION || require(SOLC_MODULE).version();
  // solcjs says "...Emscripten.clang"; tools that parse native output expect a platform suffix.
  const base = full.replace(/\.Emscripten\.clang$/, '');
  process.stdout.write(
    'solc, the solidity compiler commandline interface\n' + `Version: ${base}.Linux.g++\n`,
  );
}

function printHelp() {
  process.stdout.write(
    [
      'solc, the Solidity commandline compiler (solcjs wrapper).',
      '',
      'Usage: solc --standard-json [--base-path path] [--include-path path]... < input.json',
      '',
      'Input Options:',
      '  --base-path path       Use the given path as the root of the source tree.',
      '  --include-path path    Make an additional source directory available to the',
      '                         default import callback.',
      '  --allow-paths path(s)  Accepted for compatibility; reads stay under the paths above.',
      '',
      'Alternative Input Modes:',
      '  --standard-json        Switch to Standard JSON input / output mode.',
      '',
      'Output Components:',
      '  --combined-json abi,ast,bin,bin-runtime,srcmap,srcmap-runtime,userdoc,devdoc,hashes',
      '                         Flag to select the wanted outputs (for FILE.sol inputs).',
      '',
    ].join('\n'),
  );
}

function parseArgs(argv) {
  const opts = {
    standardJson: false, basePath: null, includePaths: [], version: false, help: false,
    combinedJson: null, files: [], remappings: [], optimize: false, optimizeRuns: 200, evmVersion: null, viaIR: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const takeValue = () => {
      if (arg.includes('=')) return arg.slice(arg.indexOf('=') + 1);
      i += 1;
      return argv[i];
    };
    if (arg === '--version') opts.version = true;
    else if (arg === '--help') opts.help = true;
    else if (arg === '--standard-json') opts.standardJson = true;
    else if (arg.startsWith('--base-path')) opts.basePath = takeValue();
    else if (arg.startsWith('--include-path')) opts.includePaths.push(takeValue());
    else if (arg.startsWith('--allow-paths')) takeValue();
    else if (arg.startsWith('--combined-json')) opts.combinedJson = takeValue();
    else if (arg === '--optimize') opts.optimize = true;
    else if (arg.startsWith('--optimize-runs')) opts.optimizeRuns = Number(takeValue());
    else if (arg.startsWith('--evm-version')) opts.evmVersion = takeValue();
    else if (arg === '--via-ir') opts.viaIR = true;
    else if (arg === '-') continue;
    else if (!arg.startsWith('--') && arg.includes('=')) opts.remappings.push(arg);
    else if (!arg.startsWith('--') && arg.endsWith('.sol')) opts.files.push(arg);
    else {
      process.stderr.write(`solc wrapper: unsupported argument ${arg}; use --standard-json\n`);
      process.exit(1);
    }
  }
  return opts;
}

function makeImportReader(opts) {
  const roots = [opts.basePath || process.cwd(), ...opts.includePaths, process.cwd()];
  return function findImport(importPath) {
    for (const root of roots) {
      const candidate = path.resolve(root, importPath);
      if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) {
        return { contents: fs.readFileSync(candidate, 'utf8') };
      }
    }
    return { error: `File not found under ${roots.join(', ')}: ${importPath}` };
  };
}

function compileStandardJson(opts) {
  const input = fs.readFileSync(0, 'utf8');
  const solc = require(SOLC_MODULE);
  const output = solc.compile(input, { import: makeImportReader(opts) });
  process.stdout.write(output);
}

// The legacy --combined-json mode, as a standard-JSON compilation re-shaped into the old output.
function compileCombinedJson(opts) {
  const wanted = new Set(opts.combinedJson.split(','));
  const sources = {};
  for (const file of opts.files) sources[file] = { content: fs.readFileSync(file, 'utf8') };
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      remappings: opts.remappings,
      optimizer: { enabled: opts.optimize, runs: opts.optimizeRuns },
      viaIR: opts.viaIR,
      outputSelection: {
        '*': {
          '*': ['abi', 'evm.bytecode.object', 'evm.bytecode.sourceMap', 'evm.deployedBytecode.object',
            'evm.deployedBytecode.sourceMap', 'evm.methodIdentifiers', 'userdoc', 'devdoc'],
          '': ['ast'],
        },
      },
    },
  };
  if (opts.evmVersion) input.settings.evmVersion = opts.evmVersion;
  const solc = require(SOLC_MODULE);
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: makeImportReader(opts) }));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) process.stderr.write((e.formattedMessage || e.message) + '\n');
  if (errors.length) process.exit(1);
  const contracts = {};
  for (const [source, byName] of Object.entries(output.contracts || {})) {
    for (const [name, c] of Object.entries(byName)) {
      const out = {};
      if (wanted.has('abi')) out.abi = c.abi;
      if (wanted.has('bin')) out.bin = c.evm.bytecode.object;
      if (wanted.has('bin-runtime')) out['bin-runtime'] = c.evm.deployedBytecode.object;
      if (wanted.has('srcmap')) out.srcmap = c.evm.bytecode.sourceMap || '';
      if (wanted.has('srcmap-runtime')) out['srcmap-runtime'] = c.evm.deployedBytecode.sourceMap || '';
      if (wanted.has('userdoc')) out.userdoc = c.userdoc;
      if (wanted.has('devdoc')) out.devdoc = c.devdoc;
      if (wanted.has('hashes')) out.hashes = c.evm.methodIdentifiers;
      contracts[`${source}:${name}`] = out;
    }
  }
  const sourceList = Object.entries(output.sources || {}).sort((a, b) => a[1].id - b[1].id).map(([name]) => name);
  const combinedSources = {};
  for (const [name, s] of Object.entries(output.sources || {})) {
    combinedSources[name] = wanted.has('ast') ? { AST: s.ast, id: s.id } : { id: s.id };
  }
  const version = (FULL_VERSION || solc.version()).replace(/\.Emscripten\.clang$/, '');
  process.stdout.write(JSON.stringify({ contracts, sourceList, sources: combinedSources, version }));
}

const opts = parseArgs(process.argv.slice(2));
if (opts.version) printVersion();
else if (opts.help) printHelp();
else if (opts.standardJson) compileStandardJson(opts);
else if (opts.combinedJson && opts.files.length) compileCombinedJson(opts);
else {
  printHelp();
  process.exit(1);
}
