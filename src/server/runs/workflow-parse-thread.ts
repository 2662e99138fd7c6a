/**
 * The body of the thread that parses submitted workflows (see workflow-parser.ts): one answer out
 * for each message in (`ParseRequest`), for as long as the server lives. The lane of large
 * workflows runs at a lower priority: on a busy machine the request thread and the lane of small
 * ones get the CPU first.
 */
import { parseWorkflow } from "../../workflow/parse.js";
import { answerRequests } from "../thread-queue.js";
import type { ParseRequest } from "./workflow-parser.js";

answerRequests(({ text, file, limits }: ParseRequest) => parseWorkflow(text, file, limits));
