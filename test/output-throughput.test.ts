import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliPath, tempDir, writeWorkflow } from "./helpers/cli.js";
import {
  adminToken,
  isFinal,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/**
 * A step's shell line that writes the voluntary context switches (wakeups after a wait) of the
 * runyard process running it, the nearest `node` among its ancestors, to `file`.
 */
const recordWakeups = (file: string): string =>
  `p=$PPID; while [ "$(cat /proc/$p/comm)" != node ]; do p=$(awk '/^PPid/{print $2}' /proc/$p/status); done; awk '/^voluntary_ctxt_switches/{print $2}' /proc/$p/status > ${file}`;

describe("runyard run, a step printing a lot", () => {
  it("takes its output in large reads: far fewer wakeups than the step's 4 KiB writes", async () => {
    const dir = tempDir();
    const megabytes = 32;
    const step = (name: string, script: string): string =>
      `  - name: ${name}\n    action: shell.run\n    args:\n      script: |\n        ${script}\n`;
    const file = writeWorkflow(
      `name: wakeups\nsteps:\n${step("before", recordWakeups(join(dir, "before")))}${step(
        "print",
        `head -c ${megabytes * 1048576} /dev/zero | tr '\\0' 'x' | fold -w 100`,
      )}${step("after", recordWakeups(join(dir, "after")))}`,
    );
    // As a user runs it: `runyard run FILE > /dev/null`, so no reader paces it.
    const child = spawn(process.execPath, [cliPath, "run", file], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += String(chunk);
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code, stderr).toBe(0);
    const wakeups =
      Number(readFileSync(join(dir, "after"), "utf8")) - Number(readFileSync(join(dir, "before"), "utf8"));
    const writes = (megabytes * 1048576) / 4096; // fold writes 4 KiB at a time into a pipe
    console.log(`runyard woke ${wakeups} times for ${writes} writes of the step`);
    // The fault: a wakeup per few writes of the step (its 8,192 writes woke runyard about 1,500
    // times). The fork-server relays a streaming step's output once a millisecond, and runyard
    // wakes a few times per relay (its header, then its bytes): about 180 here on an idle machine,
    // up to about 300 on a busy one, where the step prints less per millisecond.
    expect(wakeups).toBeLessThan(writes / 16);
  }, 60_000);
});

/** Reads a whole SSE answer from a raw socket; answers how many HTTP chunks carried it. */
function chunksOfStream(
  url: string,
  runId: string,
  /** Called with all the answer's bytes so far, each time more come. */
  watch?: (received: string) => void,
): Promise<{ chunks: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        `GET /api/runs/${runId}/events HTTP/1.1\r\nhost: ${hostname}\r\nauthorization: Bearer ${adminToken}\r\naccept: text/event-stream\r\n\r\n`,
      );
    });
    let received = Buffer.alloc(0);
    socket.on("data", (data: Buffer) => {
      received = Buffer.concat([received, data]);
      watch?.(received.toString());
      const parsed = parseChunked(received);
      if (parsed) {
        socket.destroy();
        resolve(parsed);
      }
    });
    socket.on("error", reject);
    socket.on("close", () =>
      reject(new Error(`the stream ended early: ${received.toString().slice(0, 300)}`)),
    );
  });
}

/** A chunked HTTP answer's chunk count and body, or undefined while its last chunk has not come. */
function parseChunked(answer: Buffer): { chunks: number; body: string } | undefined {
  let at = answer.indexOf("\r\n\r\n");
  if (at < 0) return undefined;
  if (!/transfer-encoding: chunked/i.test(answer.subarray(0, at).toString())) {
    throw new Error(`not a chunked answer: ${answer.subarray(0, at).toString()}`);
  }
  at += 4;
  const parts: Buffer[] = [];
  for (;;) {
    const lineEnd = answer.indexOf("\r\n", at);
    if (lineEnd < 0) return undefined;
    const size = Number.parseInt(answer.subarray(at, lineEnd).toString(), 16);
    if (size === 0) return { chunks: parts.length, body: Buffer.concat(parts).toString() };
    if (answer.length < lineEnd + 2 + size + 2) return undefined;
    parts.push(answer.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

describe("the event stream of a finished run", () => {
  let server: TestServer;
  let runner: Proc;

  beforeAll(async () => {
    server = await startTestServer(tempDir());
    runner = await startRunner(server.url, await runnerToken(server.url), { id: "throughput-runner" });
  });

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
  });

  it("sends its stored events in a few large writes, not a write per event, each event whole", async () => {
    const steps = Array.from(
      { length: 50 },
      (_, i) => `  - name: s${i}\n    action: cmd.run\n    args:\n      cmd: echo line-${i}\n`,
    );
    const runId = await submit(server.url, `name: many\nsteps:\n${steps.join("")}`);
    const run = await waitForRun(server.url, runId, isFinal, 60_000);
    expect(run.status).toBe("success");

    const { chunks, body } = await chunksOfStream(server.url, runId);
    const frames = body.split("\n\n").filter((frame) => frame.startsWith("id: "));
    const events = frames.map((frame) => {
      const [id, type, data] = frame.split("\n");
      const event = JSON.parse(data?.replace(/^data: /, "") ?? "") as { seq: number; type: string };
      expect(id).toBe(`id: ${event.seq}`);
      expect(type).toBe(`event: ${event.type}`);
      return event;
    });
    expect(events.map((event) => event.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)?.type).toBe("run.finished");
    expect(events.filter((event) => event.type === "step.output")).toHaveLength(50);
    console.log(`${events.length} events in ${chunks} chunks`);
    // One chunk (one write) per event was the fault: ~150 of them here (a step's start, output and
    // end each); 50 steps, each a sandboxed process, keep the run short on a slow machine.
    expect(chunks).toBeLessThan(events.length / 10);
  }, 90_000);

  it("sends a run's live events a write per stored batch, not a write per event", async () => {
    // A busy machine, made exact: once the step's output flows, the server is stopped (SIGSTOP)
    // until the step says, on a socket of this test, that it printed the rest. Its runner holds
    // what came meanwhile behind the batch in flight and sends it as a batch or two when the
    // server is back: hundreds of events stored and told to the stream at once. (Left to run, a
    // step that prints slower than an ack comes back has its runner send a batch per event.)
    let printed: () => void = () => undefined;
    const done = new Promise<void>((resolve) => {
      printed = resolve;
    });
    const doneSocket = createServer((socket) => socket.on("data", () => printed()));
    await new Promise<void>((resolve) => doneSocket.listen(0, "127.0.0.1", resolve));
    const { port } = doneSocket.address() as { port: number };
    // Queued for a runner that is not there yet, so that every event after `run.queued` comes
    // live, as the runner's batches and the engine's are stored.
    const runId = await submit(
      server.url,
      [
        "name: live",
        "inventory:",
        "  hosts:",
        "    worker: {labels: [live-stream]}",
        "steps:",
        "  - name: chatty",
        "    targets: [worker]",
        "    action: shell.run",
        "    args:",
        "      shell: bash",
        "      script: |",
        '        for i in $(seq 1 400); do echo "out $i"; echo "err $i" >&2; cksum /dev/null >/dev/null; done',
        `        echo printed > /dev/tcp/127.0.0.1/${port}`,
        "",
      ].join("\n"),
    );
    let open: () => void = () => undefined;
    const isOpen = new Promise<void>((resolve) => {
      open = resolve;
    });
    const pid = server.proc.child.pid!;
    let held = false;
    const streamed = chunksOfStream(server.url, runId, (received) => {
      open();
      if (held || !received.includes("event: step.output")) return;
      held = true;
      process.kill(pid, "SIGSTOP");
      void done.then(() => process.kill(pid, "SIGCONT"));
    });
    await isOpen;
    const live = await startRunner(server.url, await runnerToken(server.url), {
      id: "live-stream-runner",
      labels: "live-stream",
    });
    try {
      const { chunks, body } = await streamed;
      const frames = body.split("\n\n").filter((frame) => frame.startsWith("id: "));
      const seqs = frames.map((frame) => Number(frame.split("\n")[0]?.slice("id: ".length)));
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
      expect(frames.at(-1)).toContain("event: run.finished");
      const outputs = frames.filter((frame) => frame.includes("event: step.output")).length;
      console.log(`${frames.length} live events (${outputs} of output) in ${chunks} chunks`);
      // A step's output switching between stdout and stderr is an event per switch, as many as the
      // runner's reads tell apart: up to 800 here, 390 of 400 on a quiet machine, 165 on a busy
      // one. A write (a chunk) per event was the fault: then there would be as many chunks.
      expect(outputs).toBeGreaterThan(100);
      expect(chunks).toBeLessThan(frames.length / 10);
    } finally {
      process.kill(pid, "SIGCONT");
      doneSocket.close();
      await live.kill();
    }
  }, 90_000);
});
