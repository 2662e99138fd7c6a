#!/usr/bin/env node
import module from "node:module";

// Node 22.1 and later keep the compiled code of the CLI's modules between starts (in the OS temp
// folder; NODE_DISABLE_COMPILE_CACHE=1 turns it off): most of a short command's time is loading.
module.enableCompileCache?.();

const { main } = await import("../dist/cli/main.js");
main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(error);
    process.exitCode = 1;
  },
);
