/**
 * The body of the thread that parses submitted workflows (see workflow-parser.ts): `ParseReady`
 * once loaded, then one answer out for each message in (`ParseRequest`), for as long as the
 * server lives.
 */
import { parentPort } from "node:worker_threads";
import { parseWorkflow } from "../../workflow/parse.js";
import type { ParseAnswer, ParseReady, ParseRequest } from "./workflow-parser.js";

parentPort?.on("message", ({ id, text, file, limits }: ParseRequest) => {
  let answer: ParseAnswer;
  try {
    answer = { id, ...parseWorkflow(text, file, limits) };
  } catch (error) {
    answer = { id, failed: error instanceof Error ? error.message : String(error) };
  }
  parentPort?.postMessage(answer);
});
// Loaded and listening: the time a request takes on this thread counts from here.
parentPort?.postMessage({ ready: true } satisfies ParseReady);
