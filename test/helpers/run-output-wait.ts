import { RunEvent } from "../../src/core/events.js";
import { adminToken } from "./server.js";

/**
 * Resolves, with what the run's steps printed so far, once that holds `text`: it follows the run's
 * SSE stream (`/api/runs/<id>/events`), which pushes each step.output as it comes, so a test acts
 * the moment a step says it is ready rather than after a guess of how long that takes. Rejects if
 * the run finishes first or after `timeoutMs`.
 */
export async function waitForOutput(
  url: string,
  runId: string,
  text: string,
  timeoutMs = 30_000,
  token = adminToken,
): Promise<string> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let output = "";
  try {
    const response = await fetch(new URL(`/api/runs/${runId}/events?access_token=${token}`, url), {
      signal: controller.signal,
    });
    if (!response.ok || !response.body) throw new Error(`events of ${runId}: HTTP ${response.status}`);
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of response.body) {
      pending += decoder.decode(chunk, { stream: true });
      const blocks = pending.split("\n\n");
      pending = blocks.pop() ?? "";
      for (const block of blocks) {
        const data = block.split("\n").find((line) => line.startsWith("data: "));
        if (!data) continue;
        const event = RunEvent.parse(JSON.parse(data.slice(6)));
        if (event.type === "step.output") output += event.data;
        if (output.includes(text)) return output;
        if (event.type === "run.finished")
          throw new Error(`run ${runId} ended before printing ${text}: ${output}`);
      }
    }
    throw new Error(`the events of run ${runId} ended before it printed ${text}: ${output}`);
  } catch (error) {
    if (controller.signal.aborted)
      throw new Error(`run ${runId} did not print ${text} in ${timeoutMs} ms: ${output}`);
    throw error;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}
