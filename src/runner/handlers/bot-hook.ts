import { spawn } from "node:child_process";
import type { BotCall, BotReply } from "../../core/protocol.js";

type HookCall = Extract<BotCall, { kind: "hook" }>;

/** How long the bot has to answer a forwarded webhook. */
export const hookAnswerMs = 10_000;
/** The largest answer a bot's webhook may give back (the rest is cut, and the status is 502). */
export const maxHookAnswerBytes = 1024 * 1024;

/**
 * Runs inside the container's network namespace (nsenter): one HTTP request to the bot's port on
 * 127.0.0.1, the answer as JSON on stdout. Nothing is published on the host; a bot on network
 * `none` has only its loopback, which this reaches.
 */
const forwarder = `
const http = require("node:http");
let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const call = JSON.parse(input);
  const body = Buffer.from(call.body_base64, "base64");
  const done = (reply) => { process.stdout.write(JSON.stringify(reply)); process.exit(0); };
  const request = http.request(
    { host: "127.0.0.1", port: call.port, method: call.method, path: call.path,
      headers: { ...call.headers, "content-length": String(body.length) }, timeout: call.timeout_ms },
    (response) => {
      const chunks = []; let size = 0; let cut = false;
      response.on("data", (c) => { size += c.length; if (size > call.max_bytes) { cut = true; response.destroy(); } else chunks.push(c); });
      const end = () => done(cut
        ? { status: 502, headers: {}, body_base64: "", error: { code: "BOT_HOOK_FAILED", message: "the bot's answer is larger than " + call.max_bytes + " bytes" } }
        : { status: response.statusCode, headers: response.headers, body_base64: Buffer.concat(chunks).toString("base64") });
      response.on("end", end); response.on("close", end);
    },
  );
  request.on("timeout", () => request.destroy(new Error("the bot did not answer within " + call.timeout_ms + " ms")));
  request.on("error", (e) => done({ status: 502, headers: {}, body_base64: "",
    error: { code: "BOT_HOOK_FAILED", message: "the bot's port " + call.port + " did not answer: " + (e.code || e.message) } }));
  request.end(body);
});
`;

/** The answer headers a caller gets back from the bot; the rest (cookies, hop-by-hop) stay behind. */
const answerHeaders = new Set([
  "content-type",
  "cache-control",
  "location",
  "retry-after",
  "etag",
  "last-modified",
  "content-language",
]);

/**
 * Sends one webhook request to the bot's `port` inside its container's network namespace (the
 * container's first process is `pid`), and gives back its status, a subset of its headers and
 * its body.
 */
export async function forwardHook(pid: number, call: HookCall): Promise<BotReply> {
  const input = JSON.stringify({ ...call, timeout_ms: hookAnswerMs, max_bytes: maxHookAnswerBytes });
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn("nsenter", [`--net=/proc/${pid}/ns/net`, "--", process.execPath, "-e", forwarder], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    });
    let out = "";
    let err = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), hookAnswerMs + 5000);
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0 && out) resolve(out);
      else
        reject(new Error(`could not reach the bot's network: ${err.trim().slice(0, 300) || `exit ${code}`}`));
    });
    // nsenter that fails before reading answers by its exit code above, not by EPIPE here.
    child.stdin.on("error", () => undefined);
    child.stdin.end(input);
  });
  const reply = JSON.parse(output) as BotReply & { headers: Record<string, string | string[]> };
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(reply.headers ?? {})) {
    if (answerHeaders.has(name.toLowerCase())) headers[name.toLowerCase()] = String(value);
  }
  return { ...reply, headers };
}
