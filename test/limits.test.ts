import { randomBytes } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunEvent } from "../src/core/events.js";
import { parseEvents, runCli, tempDir, writeWorkflow } from "./helpers/cli.js";
import { machinePace } from "./helpers/machine-pace.js";
import {
  adminToken,
  api,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startCli,
  startRunner,
  startTestServer,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

const flow = (script: string, args = ""): string =>
  `name: limits\nsteps:\n  - name: big\n    action: shell.run\n    args:\n${args}      script: |\n        ${script}\n`;

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) * 1024;
}

/** An SSE client that sends its request and never reads a byte of the answer. */
function idleClient(url: string, runId: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        `GET /api/runs/${runId}/events HTTP/1.1\r\nhost: ${hostname}\r\nauthorization: Bearer ${adminToken}\r\naccept: text/event-stream\r\n\r\n`,
      );
      socket.pause();
      resolve(socket);
    });
    socket.on("error", reject);
  });
}

/** Times `GET /health`; the server must answer it whatever its SSE clients do. */
async function healthMs(url: string, server?: TestServer): Promise<number> {
  const start = performance.now();
  const response = await fetch(new URL("/health", url)).catch((error: unknown) => {
    throw new Error(`/health failed: ${String(error)}\n${server?.proc.output() ?? ""}`);
  });
  await response.text();
  if (!response.ok) throw new Error(`/health answered ${response.status}`);
  return performance.now() - start;
}

/** Samples the server's RSS and /health latency until `until` settles, then `extra` more times. */
async function watchServer(
  server: TestServer,
  until: Promise<unknown>,
  extraSamples: number,
): Promise<{ peakRss: number; slowestHealthMs: number; healthMs: number[] }> {
  const pid = server.proc.child.pid ?? 0;
  let settled = false;
  void until.finally(() => {
    settled = true;
  });
  let peakRss = 0;
  const samples: number[] = [];
  let after = 0;
  while (!settled || after < extraSamples) {
    if (settled) after += 1;
    peakRss = Math.max(peakRss, rssOf(pid));
    samples.push(await healthMs(server.url, server));
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await until;
  return { peakRss, slowestHealthMs: Math.max(...samples), healthMs: samples };
}

async function rawStream(
  url: string,
  runId: string,
  headers: Record<string, string> = {},
  query = "",
): Promise<{ status: number; text: string }> {
  const response = await fetch(new URL(`/api/runs/${runId}/events${query}`, url), {
    headers: { authorization: `Bearer ${adminToken}`, ...headers },
  });
  return { status: response.status, text: await response.text() };
}

/**
 * Announces a large POST body and reads the answer before sending any of it: the server judges
 * the declared length, and a client that sent the body too would race the server's close.
 */
function postDeclaring(url: string, path: string, length: number): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        `POST ${path} HTTP/1.1\r\nhost: ${hostname}\r\nauthorization: Bearer ${adminToken}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n{"workflow":"`,
      );
    });
    let answer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      answer += chunk;
      const split = answer.indexOf("\r\n\r\n");
      const length = Number(answer.match(/content-length: (\d+)/i)?.[1] ?? Number.NaN);
      if (split < 0 || answer.length < split + 4 + length) return;
      socket.destroy();
      resolve({ status: Number(answer.split(" ")[1]), text: answer.slice(split + 4, split + 4 + length) });
    });
    socket.on("error", reject);
  });
}

const outputBytes = (events: RunEvent[]): number =>
  events.reduce((sum, e) => sum + (e.type === "step.output" ? Buffer.byteLength(e.data) : 0), 0);

describe("bounded memory under slow clients", () => {
  let server: TestServer;
  let runner: Proc;

  beforeAll(async () => {
    // The log cap is raised so the whole 200 MB is stored and SSE alone is on trial. The
    // default lease: a runner busy shipping 200 MB may miss the tests' 2 s one.
    const timings = { RUNYARD_HEARTBEAT_MS: "2000", RUNYARD_LEASE_MS: "10000" };
    server = await startTestServer(tempDir(), {
      ...timings,
      RUNYARD_MAX_RUN_LOG_BYTES: String(300 * 1024 * 1024),
    });
    runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "limits-runner",
      env: timings,
    });
  });

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
  });

  it("keeps the server within 100 MB and /health fast with 5 idle SSE clients on a 200 MB run", async () => {
    const pid = server.proc.child.pid ?? 0;
    const baseline = rssOf(pid);
    const line = "runyard-limits-0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
    const runId = await submit(server.url, flow(`yes '${line}' | head -c 200000000`));
    const live = await Promise.all(Array.from({ length: 5 }, () => idleClient(server.url, runId)));
    const during = await watchServer(server, waitForRun(server.url, runId, isFinal, 120_000), 5);
    const finished = await Promise.all(Array.from({ length: 5 }, () => idleClient(server.url, runId)));
    const after = await watchServer(server, Promise.resolve(), 20);
    for (const socket of [...live, ...finished]) socket.destroy();

    const run = await waitForRun(server.url, runId, isFinal);
    expect(run.status, `${JSON.stringify(run.error)}\n${server.proc.output()}\n${runner.output()}`).toBe(
      "success",
    );
    const growthMb = (Math.max(during.peakRss, after.peakRss) - baseline) / 1048576;
    const health = [...during.healthMs, ...after.healthMs].sort((a, b) => a - b);
    const p50 = health[Math.floor(health.length * 0.5)] ?? 0;
    const p90 = health[Math.floor(health.length * 0.9)] ?? 0;
    const slowest = health.at(-1) ?? 0;
    console.log(
      `server RSS ${(baseline / 1048576).toFixed(0)} MB -> peak +${growthMb.toFixed(0)} MB; /health p50 ${p50.toFixed(0)} ms, p90 ${p90.toFixed(0)} ms, slowest ${slowest.toFixed(0)} ms of ${health.length}`,
    );
    expect(growthMb).toBeLessThan(100);
    // The step, the runner and the server share 2 cores here, so the server waits for a CPU
    // now and then: the tail (p90 80-115 ms on one quiet machine, with or without the store in
    // /health) measures the machine. The server must answer fast as a rule and never stall
    // (the fault: /health stopped answering at all). On a machine three times slower than
    // usual the p50 was 102 to 153 ms (the idle server's 5 ms), and 281 and 363 ms beside two
    // busy loops: the CPU the stream takes, not a stall. So both bounds, 300 ms for the p50 and
    // 1 s for the slowest on a usual machine, stretch as this one runs slower right now (a pace
    // of 7.4 and 12.5 beside the busy loops); a server that stalls misses them by seconds.
    const pace = machinePace();
    expect(p50, `machine pace ${pace.toFixed(1)}`).toBeLessThan(300 * pace);
    expect(slowest, `machine pace ${pace.toFixed(1)}`).toBeLessThan(1000 * pace);
  }, 120_000);
});

describe("the stored log cap", () => {
  let server: TestServer;
  let runner: Proc;

  beforeAll(async () => {
    server = await startTestServer(tempDir(), { RUNYARD_MAX_RUN_LOG_BYTES: String(1024 * 1024) });
    runner = await startRunner(server.url, await runnerToken(server.url), { id: "cap-runner" });
  });

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
  });

  it("stops storing output past the cap, says so once, and output_path keeps everything", async () => {
    const folder = tempDir();
    const runId = await submit(
      server.url,
      flow(
        "head -c 5000000 /dev/zero | tr '\\0' 'x'; echo; echo after-cap",
        `      output_path: ${folder}\n`,
      ),
    );
    const run = await waitForRun(server.url, runId, isFinal);
    expect(run.status).toBe("success");
    const events = await readEvents(server.url, runId);
    const stored = outputBytes(events);
    expect(stored).toBeLessThanOrEqual(1024 * 1024);
    const notices = events.filter((e) => e.type === "notice" && e.message.includes("not stored"));
    expect(notices).toHaveLength(1);
    const notice = notices[0] as Extract<RunEvent, { type: "notice" }>;
    expect(notice.message).toContain(String(5_000_011 - stored));
    expect(notice.message).toContain("output_path");
    const finished = events.find((e) => e.type === "step.finished");
    expect(finished?.type === "step.finished" && finished.output_path).toBeTruthy();
    const path = (finished as Extract<RunEvent, { type: "step.finished" }>).output_path ?? "";
    expect(statSync(path).size).toBe(5_000_011);
  });
});

describe("a single export value", () => {
  it("is capped at 1 MiB with an error naming the variable, without holding the line in memory", async () => {
    const file = writeWorkflow(
      "name: big-export\nsteps:\n  - name: exp\n    action: shell.run\n    args:\n      export_vars: true\n      script: |\n        printf 'BOPS_EXPORT:SMALL=ok\\n'\n        printf 'BOPS_EXPORT:HUGE_VALUE='; head -c 50000000 /dev/zero | tr '\\0' 'v'; echo\n",
    );
    const start = performance.now();
    let peak = 0;
    const result = await runCli(["run", file, "--json"], {
      onStdout: (_chunk, child) => {
        try {
          const hwm = readFileSync(`/proc/${child.pid}/status`, "utf8").match(/VmHWM:\s+(\d+)/)?.[1];
          peak = Math.max(peak, Number(hwm ?? 0) * 1024);
        } catch {
          // exited
        }
      },
    });
    const seconds = (performance.now() - start) / 1000;
    expect(result.code).not.toBe(0);
    const lines = result.stdout.split("\n").filter((l) => l.includes("HUGE_VALUE") && !l.includes("vvvv"));
    expect(lines.join("\n")).toMatch(/HUGE_VALUE.*1 MiB|1 MiB.*HUGE_VALUE/);
    expect(result.stdout).toContain("EXPORT_TOO_LARGE");
    expect(seconds).toBeLessThan(20);
    expect(peak / 1048576).toBeLessThan(400);
  }, 60_000);
});

describe("the HTTP surface", () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });

  afterAll(async () => {
    await server?.proc.kill();
  });

  it("refuses a run body over 8 MiB with 413 and a hint, and /health stays fast meanwhile", async () => {
    await healthMs(server.url); // the first fetch of a process loads its HTTP client
    // The same probes without the posts: what this machine's load alone costs /health now.
    const quiet: number[] = [];
    for (let i = 0; i < 5; i++) quiet.push(await healthMs(server.url));
    quiet.sort((a, b) => a - b);
    const posts = Promise.all(
      Array.from({ length: 4 }, () => postDeclaring(server.url, "/api/runs", 9 * 1024 * 1024)),
    );
    const health: number[] = [];
    for (let i = 0; i < 5; i++) health.push(await healthMs(server.url));
    const responses = await posts;
    for (const response of responses) {
      expect(response.status).toBe(413);
      const answer = JSON.parse(response.text) as { error: { code: string; message: string; hint: string } };
      expect(answer.error.code).toBe("BODY_TOO_LARGE");
      expect(answer.error.message).toContain("8 MiB");
      expect(answer.error.hint).toBeTruthy();
    }
    health.sort((a, b) => a - b);
    // A server that read or buffered the declared bodies would hold /health for seconds; a busy
    // machine slows the quiet probes as much as these.
    const seen = `/health ${health.map(Math.round).join(", ")} ms with the posts, ${quiet.map(Math.round).join(", ")} without`;
    expect(health[2], seen).toBeLessThan(Math.max(100, 3 * (quiet[2] ?? 0)));
    expect(health.at(-1), seen).toBeLessThan(Math.max(1000, 3 * (quiet.at(-1) ?? 0)));
  });

  it("answers 204 to a cursor at or past the end of a finished run, and names events", async () => {
    const runId = await submit(server.url, "name: quick\nsteps:\n  - name: s\n    command: echo hi\n");
    // No runner joined this server: cancel the queued run so it finishes.
    await api(server.url, "POST", `/api/runs/${runId}/cancel`);
    const full = await rawStream(server.url, runId);
    expect(full.status).toBe(200);
    expect(full.text).toMatch(/^retry: \d+$/m);
    expect(full.text).toMatch(/^event: run\.queued$/m);
    expect(full.text).toMatch(/^event: run\.finished$/m);
    const ids = [...full.text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    const last = Math.max(...ids);
    expect((await rawStream(server.url, runId, { "last-event-id": String(last) })).status).toBe(204);
    expect((await rawStream(server.url, runId, {}, `?after=${last}`)).status).toBe(204);
    expect((await rawStream(server.url, runId, {}, `?after=${last + 10}`)).status).toBe(204);
    expect((await rawStream(server.url, runId, {}, `?after=${last - 1}`)).status).toBe(200);
    // The CLI stops too, rather than reconnecting forever.
    const logs = await runCli([
      "runs",
      "logs",
      runId,
      "-f",
      "--json",
      "--server",
      server.url,
      "--token",
      adminToken,
    ]);
    expect(parseEvents(logs.stdout).at(-1)?.type).toBe("run.finished");
  });

  it("takes ?access_token= on the event stream only", async () => {
    const runId = await submit(server.url, "name: quick\nsteps:\n  - name: s\n    command: echo hi\n");
    await api(server.url, "POST", `/api/runs/${runId}/cancel`);
    const stream = await fetch(new URL(`/api/runs/${runId}/events?access_token=${adminToken}`, server.url));
    expect(stream.status).toBe(200);
    await stream.text();
    for (const path of ["/api/runs", `/api/runs/${runId}`, `/run-status?run_id=${runId}`, "/api/runners"]) {
      const response = await fetch(
        new URL(`${path}${path.includes("?") ? "&" : "?"}access_token=${adminToken}`, server.url),
      );
      expect(response.status, path).toBe(401);
      const body = (await response.json()) as { error: { hint: string } };
      expect(body.error.hint).toContain("Authorization");
    }
  });

  it("checks API vars names like a workflow's vars", async () => {
    for (const name of ["A=B", "", "A\u0000B", "1X", "has space"]) {
      const { status, body } = await api<{ error: { code: string; message: string; hint: string } }>(
        server.url,
        "POST",
        "/api/runs",
        { workflow: "name: x\nsteps:\n  - name: s\n    command: echo hi\n", vars: { [name]: "v" } },
      );
      expect(status, JSON.stringify(name)).toBe(400);
      expect(body.error.code).toBe("INVALID_INPUT");
      expect(body.error.message).toContain("vars");
      expect(body.error.hint).toContain("letters, digits and _");
    }
  });

  it("answers deeply nested YAML with a positioned message, not a stack overflow", async () => {
    for (const workflow of [`steps: ${"[".repeat(100_000)}`, deepMaps(1000), `x: ${"{a: ".repeat(50_000)}`]) {
      const { status, body } = await api<{ error: { code: string; message: string } }>(
        server.url,
        "POST",
        "/api/runs",
        { workflow },
      );
      expect(status).toBe(400);
      expect(body.error.code).toBe("WORKFLOW_INVALID");
      expect(body.error.message).not.toMatch(/call stack/i);
      expect(body.error.message).toMatch(/workflow\.yaml:\d+:\d+: .*nest/);
    }
  });
});

function deepMaps(depth: number): string {
  return Array.from({ length: depth }, (_, i) => `${" ".repeat(i)}k${i}:`).join("\n");
}

describe("input edges of the CLI", () => {
  it("runyard validate reports deep nesting with a line and column", async () => {
    const file = writeWorkflow(`name: deep\nsteps: ${"[".repeat(100_000)}\n`);
    const result = await runCli(["validate", file]);
    expect(result.code).toBe(2);
    const text = result.stdout + result.stderr;
    expect(text).not.toMatch(/call stack/i);
    expect(text).toMatch(/flow\.yaml:2:\d+: .*nest/);
  });

  for (const [what, bytes] of [
    ["an empty", Buffer.alloc(0)],
    ["a corrupt", Buffer.concat([Buffer.from("not a database at all\n"), randomBytes(8192)])],
  ] as const) {
    it(`refuses to start on ${what} database file and leaves its bytes alone`, async () => {
      const home = tempDir();
      const db = join(home, "runyard.db");
      writeFileSync(db, bytes);
      const proc = startCli(["server", "--port", "0", "--home", home], { RUNYARD_ADMIN_TOKEN: adminToken });
      const outcome = await Promise.race([proc.exited, proc.waitFor("listening on").then(() => "started")]);
      await proc.kill("SIGKILL");
      expect(outcome).not.toBe("started");
      expect(outcome).not.toBe(0);
      expect(proc.output()).toContain(db);
      expect(proc.output()).toMatch(/hint: .*(backup|move|rename)/i);
      expect(proc.output()).not.toContain("listening on");
      expect(readFileSync(db).equals(bytes)).toBe(true);
    });
  }
});
