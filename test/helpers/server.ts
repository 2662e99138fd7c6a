import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { type ClientRequest, request as httpRequest } from "node:http";
import { createServer, Socket as NetSocket, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { isFinalStatus, RunEvent, type RunStatus } from "../../src/core/events.js";
import { recordRunnerId, recordStart } from "../cost/record.js";
import { cliPath, repoRoot, tempDir } from "./cli.js";
import { freePort } from "./free-port.js";
import { sayHeld } from "./process-report.js";

export const adminToken = "ryt_test_admin_token_0123456789";

/**
 * Timings for tests that are not about a runner's loss: a runner heartbeats every 2 s, as users'
 * runners do, and is taken for lost after 15 s of silence, far beyond any stall of a loaded
 * machine (on a host three times slower than usual, with the suite's four files at a time, a
 * runner or server was once unheard for over 2 s). A heartbeat renews the runner's row and its
 * jobs' leases in the store and crosses the WebSocket both ways: at 300 ms a connected runner and
 * its server spent 18 ms of CPU a second between them on a slow 2-core host, 11 at 2 s. A
 * restarted server holds its runners' leases 10 s, above the runner's longest reconnect wait
 * (5 s, plus a fifth of jitter): a live runner is never counted lost across a restart.
 */
export const fastTimings = {
  RUNYARD_HEARTBEAT_MS: "2000",
  RUNYARD_LEASE_MS: "15000",
  RUNYARD_RECONNECT_GRACE_MS: "10000",
  RUNYARD_KILL_GRACE_MS: "300",
};

/**
 * For the tests about a runner's loss (killed, stopped, cut off): its jobs are lost 2 s after
 * its last heartbeat, which comes every 300 ms, so they see it happen without waiting out the
 * usual lease.
 */
export const lossTimings = { ...fastTimings, RUNYARD_HEARTBEAT_MS: "300", RUNYARD_LEASE_MS: "2000" };

let fileTimings: Record<string, string> = fastTimings;

/**
 * Called at the top of a file about a runner's loss: its servers, runners and ups take
 * `lossTimings` instead of `fastTimings`, until the file ends (a worker runs file after file).
 */
export function expectRunnerLoss(): void {
  beforeAll(() => {
    fileTimings = lossTimings;
  });
  afterAll(() => {
    fileTimings = fastTimings;
  });
}

/** The timings of this file's servers, runners and ups: `fastTimings`, or `lossTimings` (above). */
export function testTimings(): Record<string, string> {
  return fileTimings;
}

export interface Proc {
  child: ChildProcess;
  output: () => string;
  /** Resolves when the output contains `text`. */
  waitFor: (text: string | RegExp, timeoutMs?: number) => Promise<string>;
  exited: Promise<number | null>;
  kill: (signal?: NodeJS.Signals) => Promise<number | null>;
}

let stepRoot: string | undefined;

/**
 * The folder of this test file's that every runner and `runyard up` it starts lists in
 * step_cwd_roots, as an operator lists the folders their steps may work in.
 */
function stepCwdRoot(): string {
  // Made again after the file that made it ended (its temp folders are removed): a worker may run
  // several files one after another.
  if (stepRoot === undefined || !existsSync(stepRoot)) stepRoot = tempDir("runyard-step-cwds-");
  return stepRoot;
}

/**
 * A folder a sandboxed step sees, read-write, when it names it as its `cwd`: the test's gates,
 * markers and pid files go there. (The host's /tmp, where `tempDir` makes folders, is not the
 * sandbox's: a step that writes outside its cwd writes into its own /tmp.)
 */
export function stepDir(): string {
  return mkdtempSync(join(stepCwdRoot(), "step-"));
}

/** What the cost map counts a CLI process as, by its command. */
function startKind(command: string | undefined): "server" | "runner" | "up" | "cli" {
  return command === "server" || command === "runner" || command === "up" ? command : "cli";
}

/**
 * Starts the built CLI as a long-running process; `bin` names another build's `bin/runyard.js` (a
 * previous release's) instead of this checkout's.
 */
export function startCli(
  args: string[],
  env: Record<string, string> = {},
  cwd = repoRoot,
  bin = cliPath,
): Proc {
  const kind = startKind(args[0]);
  recordStart(kind);
  const id = args.indexOf("--id");
  if (kind === "runner" && id >= 0 && args[id + 1]) recordRunnerId(args[id + 1] as string);
  // Where Node writes a report of the process (its handles, its stack) when sent SIGUSR2: what a
  // process that does not exit after SIGTERM still holds is then said (see `kill`).
  const reports = tempDir("runyard-report-");
  const child = spawn(
    process.execPath,
    ["--report-on-signal", `--report-directory=${reports}`, bin, ...args],
    {
      cwd,
      // A home of its own unless the test gives one: never state in the repository. The sandbox as
      // users have it (RUNYARD_SANDBOX unset: on where bubblewrap works, which global-setup.ts
      // checks); a test that needs it off passes RUNYARD_SANDBOX: "off" and says why. Steps may work
      // in the test's `stepDir` folders, as the operator's step_cwd_roots allows.
      env: {
        ...process.env,
        NO_COLOR: "1",
        RUNYARD_LOG_LEVEL: "warn",
        RUNYARD_HOME: tempDir(),
        RUNYARD_STEP_CWD_ROOTS: stepCwdRoot(),
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  const watchers = new Set<() => void>();
  // `up` names its runner once connected; the cost map finds that runner's containers by it.
  let upRunnerNamed = kind !== "up";
  const onData = (chunk: Buffer): void => {
    output += chunk.toString("utf8");
    if (!upRunnerNamed) {
      const connected = /runner (\S+) connected/.exec(output);
      if (connected) {
        upRunnerNamed = true;
        recordRunnerId(connected[1] as string);
      }
    }
    for (const watcher of watchers) watcher();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  // Waits on the line or the process's exit; the timeout is a net for a process that hangs
  // (a start-up took past 20 s on a loaded machine five times slower than usual).
  const waitFor = (text: string | RegExp, timeoutMs = 90_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const match =
          typeof text === "string" ? (output.includes(text) ? text : null) : output.match(text)?.[0];
        if (match) {
          watchers.delete(watcher);
          clearTimeout(timer);
          resolve(match);
          return true;
        }
        return false;
      };
      const watcher = (): void => {
        check();
      };
      const timer = setTimeout(() => {
        watchers.delete(watcher);
        reject(new Error(`timed out waiting for ${String(text)}; output so far:\n${output}`));
      }, timeoutMs);
      watchers.add(watcher);
      if (check()) return;
      void exited.then((code) => {
        if (!watchers.has(watcher) || check()) return;
        watchers.delete(watcher);
        clearTimeout(timer);
        reject(new Error(`exited (${code}) before ${String(text)}; output:\n${output}`));
      });
    });
  return {
    child,
    output: () => output,
    waitFor,
    exited,
    kill: (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        // Said, not waited on: a hook that times out then names the process that did not stop,
        // and what it printed (once, in a web test's teardown, it was not known which part hung).
        const slow = setTimeout(() => {
          process.stderr.write(
            `runyard ${args.join(" ")} (pid ${child.pid}) has not exited 30 s after ${signal}; its output:\n${output}\n`,
          );
          sayHeld(child, reports);
        }, 30_000);
        slow.unref();
        void exited.then(() => clearTimeout(slow));
      }
      return exited;
    },
  };
}

/**
 * Waits for the line that says `proc` started; when it does not come in time, the process is
 * killed before the error is thrown: no test holds it, so no hook would, and it would outlive the
 * suite (on a loaded machine, servers that started after the wait gave up were left running).
 */
export async function startedOrKilled(proc: Proc, text: string | RegExp): Promise<string> {
  try {
    return await proc.waitFor(text);
  } catch (error) {
    await proc.kill("SIGKILL");
    throw error;
  }
}

export interface TestServer {
  url: string;
  home: string;
  proc: Proc;
}

/** `runyard server` on a free port with a known admin token. */
export async function startTestServer(
  home = tempDir(),
  env: Record<string, string> = {},
  port?: number,
  /** More arguments of `runyard server`, such as `--config FILE`. */
  args: string[] = [],
): Promise<TestServer> {
  const chosen = port ?? (await freePort());
  const proc = startCli(["server", "--port", String(chosen), "--home", home, ...args], {
    RUNYARD_ADMIN_TOKEN: adminToken,
    ...testTimings(),
    ...env,
  });
  const line = await startedOrKilled(proc, /listening on http:\/\/[^\s]+/);
  return { url: line.replace("listening on ", ""), home, proc };
}

/**
 * A server a file's tests share, for the tests that neither kill nor restart it: started by the
 * first test that asks (a filtered run that needs none starts none), SIGKILLed after the last
 * test of the describe block it is made in. Each test keeps to a tenant, group or runner ids of
 * its own.
 */
export function sharedTestServer(
  start: () => Promise<TestServer> = () => startTestServer(),
): () => Promise<TestServer> {
  let shared: Promise<TestServer> | undefined;
  afterAll(async () => {
    if (shared) await (await shared).proc.kill("SIGKILL");
  });
  return () => {
    shared ??= start();
    return shared;
  };
}

export async function api<T = unknown>(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  token = adminToken,
): Promise<{ status: number; body: T }> {
  const response = await fetch(new URL(path, url), {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
}

/**
 * Announces a JSON body of `bytes` bytes and sends none of it, then reads the answer: what a
 * server that refuses an upload by its declared size says before reading it. (Sending the whole
 * body races the server closing the socket, and the client may see EPIPE instead of the answer.)
 */
export function apiDeclaredSize<T = unknown>(
  url: string,
  method: string,
  path: string,
  bytes: number,
  token = adminToken,
): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(new URL(path, url), {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        "content-length": String(bytes),
      },
    });
    request.on("error", reject);
    request.on("response", (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        text += chunk;
      });
      response.on("end", () => {
        request.destroy();
        resolve({ status: response.statusCode ?? 0, body: (text ? JSON.parse(text) : undefined) as T });
      });
    });
    request.flushHeaders();
  });
}

/** A token the admin makes through the API (`body` as POST /api/tokens takes it); throws unless made. */
export async function createToken(url: string, body: Record<string, string>): Promise<string> {
  const { status, body: made } = await api<{ token: string }>(url, "POST", "/api/tokens", body);
  if (status !== 201) throw new Error(`POST /api/tokens answered ${status}: ${JSON.stringify(made)}`);
  return made.token;
}

export async function runnerToken(url: string, group?: string): Promise<string> {
  const { body } = await api<{ token: string }>(url, "POST", "/api/tokens", {
    kind: "runner",
    name: "test runner",
    ...(group ? { group } : {}),
  });
  return body.token;
}

/** `runyard runner` joined to `serverUrl`; resolves once connected. */
export async function startRunner(
  serverUrl: string,
  token: string,
  options: { id: string; group?: string; labels?: string; capacity?: number; env?: Record<string, string> },
): Promise<Proc> {
  const proc = startCli(
    [
      "runner",
      "--server",
      serverUrl,
      "--token",
      token,
      "--id",
      options.id,
      ...(options.group ? ["--group", options.group] : []),
      ...(options.labels ? ["--labels", options.labels] : []),
      "--capacity",
      String(options.capacity ?? 2),
    ],
    // Each runner keeps its journals in a home of its own, never in the repository.
    { ...testTimings(), RUNYARD_LOG_LEVEL: "error", RUNYARD_HOME: tempDir(), ...options.env },
  );
  await startedOrKilled(proc, `runner ${options.id} connected`);
  return proc;
}

export async function submit(
  url: string,
  workflow: string,
  vars: Record<string, string> = {},
): Promise<string> {
  const { status, body } = await api<{ run_id: string }>(url, "POST", "/api/runs", {
    kind: "workflow",
    workflow,
    vars,
  });
  if (status !== 201) throw new Error(`submit failed: ${status} ${JSON.stringify(body)}`);
  return body.run_id;
}

export interface RunView {
  run_id: string;
  status: string;
  steps: Array<{ name: string; host: string; status: string; exit_code: number | null; attempts: number }>;
  vars: Record<string, string>;
  error: { code: string; message: string; hint?: string } | null;
}

/**
 * Reads the run until `predicate` holds: at once, then each time its event stream
 * (`/api/runs/<id>/events`) says something happened. The run's record follows its events, at
 * times a moment after them (a runner's batch is projected after it is stored and sent), so a read
 * that does not match is read again shortly after its event, and once a second while nothing
 * comes, whatever the stream says.
 */
export async function waitForRun(
  url: string,
  runId: string,
  predicate: (run: RunView) => boolean,
  timeoutMs = 55_000,
): Promise<RunView> {
  let last: RunView | undefined;
  const read = async (): Promise<boolean> => {
    const { body } = await api<RunView>(url, "GET", `/api/runs/${runId}`);
    last = body;
    return predicate(body);
  };
  if (await read()) return last as RunView;
  const stop = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`run ${runId} never matched; last: ${JSON.stringify(last)}`));
      stop.abort();
    }, timeoutMs);
  });
  try {
    return await Promise.race([
      followRun(url, runId, read, stop.signal).then(() => last as RunView),
      timedOut,
    ]);
  } finally {
    clearTimeout(timer);
    stop.abort();
  }
}

/** Reads after the settle delays of `waitForRun`, from the last event on. */
const rereadAfterMs = [50, 250, 1000];

/** Calls `read` on each event of the run's stream and after it settles, until `read` says done. */
function followRun(
  url: string,
  runId: string,
  read: () => Promise<boolean>,
  signal: AbortSignal,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let done = false;
    let reading: Promise<void> = Promise.resolve();
    let wanted = false;
    let settle: NodeJS.Timeout | undefined;
    let retry: NodeJS.Timeout | undefined;
    /**
     * The stream's request, destroyed when done: fetch's cancel leaves an endless response's
     * socket open, and a server stopping waits for it.
     */
    let request: ClientRequest | undefined;
    let after = 0;
    const finish = (error?: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(settle);
      clearTimeout(retry);
      request?.destroy();
      if (error === undefined) resolve();
      else reject(error);
    };
    signal.addEventListener("abort", () => finish(new Error("aborted")));
    // One read at a time; events that come during a read make one more read after it.
    const readNow = (): void => {
      if (done || wanted) return;
      wanted = true;
      reading = reading.then(async () => {
        wanted = false;
        if (done) return;
        try {
          if (await read()) finish();
        } catch (error) {
          finish(error);
        }
      });
    };
    const settleFrom = (step: number): void => {
      clearTimeout(settle);
      if (done) return;
      const delay = rereadAfterMs[Math.min(step, rereadAfterMs.length - 1)] as number;
      settle = setTimeout(() => {
        readNow();
        settleFrom(step + 1);
      }, delay);
    };
    // Once the stream ends (after run.finished, a 204 for a run with nothing new, a server killed
    // by the test), it is followed again a second later from where it was: the settle reads go on.
    const followAgain = (ended: ClientRequest): void => {
      if (request !== ended) return;
      request = undefined;
      if (!done) retry = setTimeout(follow, 1000);
    };
    const follow = (): void => {
      if (done) return;
      const path = `/api/runs/${runId}/events?after=${after}&access_token=${adminToken}`;
      const current = httpRequest(new URL(path, url), (response) => {
        let pending = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          pending += chunk;
          const frames = pending.split("\n\n");
          pending = frames.pop() ?? "";
          let events = 0;
          for (const frame of frames) {
            const id = /^id: (\d+)$/m.exec(frame);
            if (id) after = Math.max(after, Number(id[1]));
            if (/^data: /m.test(frame)) events++;
          }
          if (events > 0) {
            readNow();
            settleFrom(0);
          }
        });
        response.on("end", () => followAgain(current));
        response.on("error", () => followAgain(current));
      });
      current.on("error", () => followAgain(current));
      current.end();
      request = current;
    };
    settleFrom(0);
    follow();
  });
}

export const isFinal = (run: RunView): boolean => isFinalStatus(run.status as RunStatus);

/** Reads a run's whole SSE stream (it ends after run.finished). */
export async function readEvents(url: string, runId: string, after = 0): Promise<RunEvent[]> {
  const response = await fetch(
    new URL(`/api/runs/${runId}/events?after=${after}&access_token=${adminToken}`, url),
  );
  const text = await response.text();
  return text
    .split("\n\n")
    .map((block) => block.split("\n").find((line) => line.startsWith("data: ")))
    .filter((line): line is string => Boolean(line))
    .map((line) => RunEvent.parse(JSON.parse(line.slice(6))));
}

/**
 * A TCP proxy on loopback whose connections a test can cut, to drop a runner's link; `down`
 * also refuses new ones until `up`, as a database that stopped and starts again does. `hold`
 * keeps what the client sends from the target until `writes` of its writes (a runner's
 * heartbeats) came, or its connection closed; `release` hands them on, in order, and carries on.
 */
export async function startProxy(targetPort: number): Promise<{
  port: number;
  cut: () => void;
  down: () => void;
  up: () => void;
  hold: (writes: number) => Promise<void>;
  release: () => void;
  close: () => Promise<void>;
}> {
  const sockets = new Set<Socket>();
  const links = new Map<Socket, Socket>();
  let refusing = false;
  const server: Server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = new NetSocket();
    upstream.connect(targetPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => socket.destroy());
    }
    links.set(client, upstream);
    client.on("close", () => links.delete(client));
    client.pipe(upstream).pipe(client);
  });
  const held = new Map<Socket, Buffer[]>();
  const hold = (writes: number): Promise<void> =>
    new Promise((resolve) => {
      let count = 0;
      for (const [client, upstream] of links) {
        client.unpipe(upstream);
        const kept: Buffer[] = [];
        held.set(client, kept);
        client.on("data", (data: Buffer) => {
          if (held.get(client) !== kept) return;
          kept.push(data);
          if (++count >= writes) resolve();
        });
        client.once("close", () => resolve());
        // Unpiped, the client was paused: its data now comes to the listener above.
        client.resume();
      }
    });
  const release = (): void => {
    for (const [client, kept] of held) {
      const upstream = links.get(client);
      held.delete(client);
      if (!upstream) continue;
      for (const data of kept) upstream.write(data);
      client.pipe(upstream);
    }
  };
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    cut: () => {
      for (const socket of sockets) socket.destroy();
    },
    down: () => {
      refusing = true;
      for (const socket of sockets) socket.destroy();
    },
    up: () => {
      refusing = false;
    },
    hold,
    release,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
export { freePort };
