/**
 * The body of the thread that parses submitted workflows (see workflow-parser.ts): one message
 * in (`ParseRequest`), one answer out, for as long as the server lives.
 */
import { parentPort } from "node:worker_threads";
import { parseWorkflow } from "../../workflow/parse.js";
import type { ParseAnswer, ParseRequest } from "./workflow-parser.js";

parentPort?.on("message", ({ id, text, file, limits }: ParseRequest) => {
  let answer: ParseAnswer;
  try {
    answer = { id, ...parseWorkflow(text, file, limits) };
  } catch (error) {
    answer = { id, failed: error instanceof Error ? error.message : String(error) };
  }
  parentPort?.postMessage(answer);
});
