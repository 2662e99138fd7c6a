import { spawn } from "node:child_process";
import { once } from "node:events";
import { tracingSettings } from "../src/server/tracing/tracing-settings.js";
import { runsInFlight, sqliteStore, withRunner, withServer } from "./server.js";
import type { BenchRow } from "./table.js";

/**
 * Trivial workflow runs through an in-process server and runner, with tracing off and with it
 * on (the SDK's OTLP HTTP exporter sending to a scripted receiver on 127.0.0.1), in the same
 * run: the bench process's CPU per run (server, runner and exporter; the steps' own processes
 * and the receiver, a process of its own, are not counted), the better of two rounds each, off
 * and on taking turns.
 */
export async function tracingCost(): Promise<BenchRow> {
  const count = 200;
  const receiver = await otlpSink();
  const on = tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint });
  const round = (traced: boolean) =>
    withServer(
      sqliteStore,
      (server, token) =>
        withRunner(server.url, token, 8, async () => {
          await runsInFlight(server.url, 16, 8); // warm-up: routes, statements, the SDK's first export
          const before = process.cpuUsage();
          const rate = await runsInFlight(server.url, count, 8);
          const used = process.cpuUsage(before);
          await server.tracing?.flush();
          return { cpuMs: (used.user + used.system) / 1000 / count, rate };
        }),
      traced ? on : undefined,
    );
  try {
    const off: { cpuMs: number; rate: number }[] = [];
    const traced: { cpuMs: number; rate: number }[] = [];
    for (let i = 0; i < 2; i++) {
      off.push(await round(false));
      traced.push(await round(true));
    }
    const best = (rounds: { cpuMs: number; rate: number }[]) =>
      rounds.reduce((a, b) => (a.cpuMs <= b.cpuMs ? a : b));
    const [quiet, loud] = [best(off), best(traced)];
    const spans = await receiver.spans();
    return {
      name: "tracing on (OTLP to a local receiver) vs off: trivial runs, 8 in flight",
      measured: `${loud.cpuMs.toFixed(2)} ms CPU a run (${loud.rate.toFixed(0)} runs/s wall, ${spans} spans received)`,
      baseline: `${quiet.cpuMs.toFixed(2)} ms CPU a run (${quiet.rate.toFixed(0)} runs/s wall)`,
      ratio: loud.cpuMs / quiet.cpuMs,
      target: "<= 1.05",
      note: "bench process CPU (in-process server and runner, the exporter); steps' processes not counted; better of 2 rounds",
    };
  } finally {
    receiver.close();
  }
}

/**
 * An OTLP/HTTP receiver in a process of its own, so that reading the exports costs the measured
 * process nothing: it answers 200 and counts the spans it was sent.
 */
async function otlpSink(): Promise<{ endpoint: string; spans(): Promise<number>; close(): void }> {
  const child = spawn(
    process.execPath,
    [
      "-e",
      `let spans = 0;
       const server = require("node:http").createServer((req, res) => {
         let body = "";
         req.on("data", (c) => (body += c));
         req.on("end", () => {
           if (req.url === "/count") return res.end(String(spans));
           for (const r of JSON.parse(body).resourceSpans ?? [])
             for (const s of r.scopeSpans ?? []) spans += (s.spans ?? []).length;
           res.writeHead(200, { "content-type": "application/json" }).end("{}");
         });
       });
       server.listen(0, "127.0.0.1", () => console.log(server.address().port));`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const [line] = (await once(child.stdout!, "data")) as [Buffer];
  const endpoint = `http://127.0.0.1:${line.toString().trim()}`;
  return {
    endpoint,
    spans: async () => Number(await (await fetch(`${endpoint}/count`, { method: "POST", body: "" })).text()),
    close: () => child.kill(),
  };
}
