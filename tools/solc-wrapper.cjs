#!/usr/bin/env node
// A native-solc-compatible command line over the npm `solc` package (solcjs, a wasm build of the
// same compiler), so that py-solc-x and ape-solidity compile with no network.
//
// Answers the three things they ask of a `solc` binary:
//   --version                      in the native format (without loading the 9.6 MB wasm)
//   --help                         a usage text that names --standard-json and --combined-json
//   --standard-json [paths...]     standard JSON on stdin -> standard JSON on stdout
// Imports not given inline are read from --base-path and each --include-path.
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
      '  --combined-json abi,bin,bin-runtime,metadata',
      '                         Not supported by this wrapper: use --standard-json.',
      '',
    ].join('\n'),
  );
}

function parseArgs(argv) {
  const opts = { standardJson: false, basePath: null, includePaths: [], version: false, help: false };
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
    else if (arg === '-') continue;
    else {
      process.stderr.write(`solc wrapper: unsupported argument ${arg}; use --standard-json\n`);
      process.exit(1);
    }
  }
  return opts;
}

function makeImportReader(opts) {
  const roots = [opts.basePath || process.cwd(), ...opts.includePaths];
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

const opts = parseArgs(process.argv.slice(2));
if (opts.version) printVersion();
else if (opts.help) printHelp();
else if (opts.standardJson) compileStandardJson(opts);
else {
  printHelp();
  process.exit(1);
}
