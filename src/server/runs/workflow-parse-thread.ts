/**
 * The body of the thread that parses submitted workflows (see workflow-parser.ts): `ParseReady`
 * once loaded, then one answer out for each message in (`ParseRequest`), for as long as the
 * server lives.
 */
import { setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import { parseWorkflow } from "../../workflow/parse.js";
import { currentThreadId } from "./thread-cpu.js";
import type { ParseAnswer, ParseReady, ParseRequest, ParseThreadData } from "./workflow-parser.js";

// The lane of large workflows runs at a lower priority: on a busy machine the request thread and
// the lane of small ones get the CPU first. On Linux a thread's nice value is its own (setpriority
// of 0 is the calling thread); elsewhere it would lower the whole server, so it is left alone.
const { nice } = (workerData ?? {}) as ParseThreadData;
if (nice !== undefined && process.platform === "linux") {
  try {
    setPriority(0, nice);
  } catch {
    // Not allowed here (a sandbox that forbids it): the thread runs at the server's priority.
  }
}

parentPort?.on("message", ({ id, text, file, limits }: ParseRequest) => {
  let answer: ParseAnswer;
  try {
    answer = { id, ...parseWorkflow(text, file, limits) };
  } catch (error) {
    answer = { id, failed: error instanceof Error ? error.message : String(error) };
  }
  parentPort?.postMessage(answer);
});
// Loaded and listening: the time a request takes on this thread counts from here, in the CPU time
// of the thread named here where /proc says it.
const tid = currentThreadId();
parentPort?.postMessage({ ready: true, ...(tid ? { tid } : {}) } satisfies ParseReady);
