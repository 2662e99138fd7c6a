import { existsSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import type { RunEvent } from "../src/core/events.js";
import { runnerSocketPath, type ServerMessage } from "../src/core/protocol.js";
import { tempDir } from "./helpers/cli.js";
import { expectNothingRan, gauge, waitForParked } from "./helpers/parked-runs.js";
import { createTestDatabase } from "./helpers/postgres.js";
import {
  api,
  expectRunnerLoss,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  stepDir,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

// About a runner's loss: its leases are short (helpers/server.ts).
expectRunnerLoss();

/**
 * Attacks on parked runs (a workflow run that waits for a runner is kept as its stored rows, and
 * its engine starts again from the store when a runner takes up its job): whatever the workflow
 * uses, whoever cancels it and whatever happens to its server or runner, the run ends as a run
 * never parked would, its log every event once and in order.
 */

const started: Proc[] = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
  for (const close of closers.splice(0)) await close();
});

/** A server whose members may notify a receiver on loopback, killed after the test. */
async function server(home = tempDir(), port?: number): Promise<TestServer> {
  const started_ = await startNotifyingServer(home, port);
  started.push(started_.proc);
  return started_;
}

function startNotifyingServer(home = tempDir(), port?: number): Promise<TestServer> {
  const config = join(tempDir(), "runyard.yaml");
  writeFileSync(config, 'notify_hosts:\n  - "127.0.0.1"\n');
  return startTestServer(home, {}, port, ["--config", config]);
}

/**
 * One such server for every test that neither kills nor restarts it, started at the first's
 * start. Each test leaves it as it found it: no run parked or going, no runner connected (its
 * runners are killed after it), and its runner ids its own.
 */
let shared: Promise<TestServer> | undefined;
function sharedServer(): Promise<TestServer> {
  shared ??= startNotifyingServer();
  return shared;
}
afterAll(async () => {
  if (shared) await (await shared).proc.kill("SIGKILL");
});

/** `step@host` of a step event. */
function where(event: RunEvent): string {
  return "step" in event && "host" in event ? `${event.step}@${event.host}` : "";
}

/**
 * A whole log: seqs 1..n, `run.queued` first and `run.finished` last, each once; `run.started`
 * once, before any step starts; each attempt started once, output only after a start of its step,
 * each step ended once.
 */
function expectWholeLog(events: readonly RunEvent[]): void {
  expect(events.map((event) => event.seq)).toEqual(events.map((_, i) => i + 1));
  const types = events.map((event) => event.type);
  expect(types[0]).toBe("run.queued");
  expect(types.at(-1)).toBe("run.finished");
  for (const once of ["run.queued", "run.started", "run.finished"])
    expect(types.filter((type) => type === once).length, once).toBeLessThanOrEqual(1);
  const runStarted = types.indexOf("run.started");
  const starts = new Set<string>();
  const finishes = new Set<string>();
  for (const [i, event] of events.entries()) {
    if (event.type === "step.started") {
      const attempt = `${where(event)}#${event.attempt}`;
      expect(runStarted, `run.started before ${attempt}`).toBeGreaterThanOrEqual(0);
      expect(runStarted).toBeLessThan(i);
      expect(starts.has(attempt), `${attempt} started twice`).toBe(false);
      starts.add(attempt);
      starts.add(where(event));
    }
    if (event.type === "step.output")
      expect(starts.has(where(event)), `output of ${where(event)} before its start`).toBe(true);
    if (event.type === "step.finished") {
      expect(finishes.has(where(event)), `${where(event)} ended twice`).toBe(false);
      finishes.add(where(event));
    }
  }
}

/** A webhook receiver on loopback that keeps every state change posted to it. */
async function receiver(): Promise<{
  url: string;
  changes: Array<{ run_id: string; status: string; step: string | null; version: number }>;
}> {
  const changes: Array<{ run_id: string; status: string; step: string | null; version: number }> = [];
  const http: Server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => {
      body += chunk.toString("utf8");
    });
    request.on("end", () => {
      changes.push(JSON.parse(body));
      response.end("ok");
    });
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  closers.push(() => new Promise((resolve) => http.close(() => resolve())));
  const address = http.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return { url: `http://127.0.0.1:${port}/hook`, changes };
}

async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A user token of a tenant, made by the admin. */
async function memberToken(url: string, tenant: string): Promise<string> {
  const { body } = await api<{ token: string }>(url, "POST", "/api/tokens", {
    kind: "user",
    name: `${tenant} member`,
    tenant_id: tenant,
  });
  return body.token;
}

/** A runner serving one tenant's jobs. */
async function tenantRunner(
  url: string,
  tenant: string,
  id: string,
  env: Record<string, string> = {},
): Promise<Proc> {
  const { body } = await api<{ token: string }>(url, "POST", "/api/tokens", {
    kind: "runner",
    name: `${tenant} runner`,
    tenant_id: tenant,
  });
  const proc = await startRunner(url, body.token, { id, env: { RUNYARD_TENANT_ID: tenant, ...env } });
  started.push(proc);
  return proc;
}

async function submitAs(
  url: string,
  token: string,
  workflow: string,
  vars: Record<string, string> = {},
): Promise<string> {
  const { status, body } = await api<{ run_id: string }>(
    url,
    "POST",
    "/api/runs",
    { kind: "workflow", workflow, vars },
    token,
  );
  if (status !== 201) throw new Error(`submit failed: ${status} ${JSON.stringify(body)}`);
  return body.run_id;
}

const oneStep = (name: string, script: string, extra = "", cwd?: string) => `
name: ${name}
${extra}steps:
  - name: only
    action: shell.run
    args:
${cwd ? `      cwd: ${cwd}\n` : ""}      script: ${JSON.stringify(script)}
`;

/** A runner written by hand that refuses every job it is assigned. */
async function craftedRunner(url: string, id: string): Promise<void> {
  const socket = new WebSocket(new URL(runnerSocketPath, url.replace(/^http/, "ws")), {
    headers: { authorization: `Bearer ${await runnerToken(url)}` },
  });
  closers.push(async () => {
    socket.close();
  });
  let welcomed = false;
  socket.on("message", (data) => {
    const message = JSON.parse(String(data)) as ServerMessage;
    if (message.type === "welcome") welcomed = true;
    if (message.type === "heartbeat") socket.send(JSON.stringify({ type: "heartbeat", bots: [] }));
    if (message.type === "assign")
      socket.send(JSON.stringify({ type: "refuse", job_id: message.job.job_id, reason: "not today" }));
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  socket.send(
    JSON.stringify({ type: "hello", runner: { hostname: "crafted", id, kinds: ["step"] }, jobs: [] }),
  );
  await until("the crafted runner is welcomed", () => (welcomed ? true : undefined));
}

/**
 * Once a later run has gone through the same runner (its session handles messages in order, so
 * whatever the runner reported of the runs before is handled by then), no run of `ids` has an
 * event stored after its `run.finished`.
 */
async function expectNothingAfterTheEnd(url: string, ids: readonly string[]): Promise<void> {
  const later = await submit(url, oneStep("later", "echo later"));
  expect((await waitForRun(url, later, isFinal)).status).toBe("success");
  for (const id of ids) {
    const end = (await readEvents(url, id)).find((event) => event.type === "run.finished")?.seq;
    const { body } = await api<{ last_seq: number }>(url, "GET", `/api/runs/${id}`);
    expect(body.last_seq, `events of ${id} after its run.finished`).toBe(end);
  }
}

function outputOf(events: readonly RunEvent[]): string {
  return events.map((event) => (event.type === "step.output" ? event.data : "")).join("");
}

describe("parked runs under attack", () => {
  it("fails a parked run JOB_REFUSED when runners refuse its job, every event once", async () => {
    const { url } = await sharedServer();
    const refused = await submit(url, oneStep("refused", "echo never"));
    await waitForParked(url, 1);
    await craftedRunner(url, "refuses");
    const run = await waitForRun(url, refused, isFinal);
    expect(run.status).toBe("failed");
    expect(run.error?.code).toBe("JOB_REFUSED");
    expectWholeLog(await readEvents(url, refused));
  }, 60_000);

  it("parks a run that said a notice first (its schedule is ignored) and a container run no runner serves, and says the notice once", async () => {
    const { url } = await sharedServer();
    const scheduled = await submit(
      url,
      oneStep("scheduled", "echo scheduled", 'schedule: {cron: "30 2 * * *"}\n'),
    );
    const boxed = await submit(
      url,
      `
name: boxed
inventory:
  hosts:
    sandbox: {group: unserved, executor: docker, image: "busybox:1", memory: 64m}
steps:
  - name: inside
    targets: [sandbox]
    action: cmd.run
    args: {cmd: echo inside, shell: sh}
`,
    );
    await waitForParked(url, 2);
    started.push(await startRunner(url, await runnerToken(url), { id: "no-docker" }));
    expect((await waitForRun(url, scheduled, isFinal)).status).toBe("success");
    const events = await readEvents(url, scheduled);
    expectWholeLog(events);
    expect(events.filter((e) => e.type === "notice")).toHaveLength(1);
    expect(await gauge(url, "runyard_replica_runs_parked")).toBe(1);
    expect((await api(url, "POST", `/api/runs/${boxed}/cancel`)).status).toBe(200);
    expect((await waitForRun(url, boxed, isFinal)).status).toBe("canceled");
    expectNothingRan(await readEvents(url, boxed));
    await waitForParked(url, 0);
  }, 60_000);

  it("runs a parked run's env, exports, approval and rollbacks once its runner comes, its shared parse untouched", async () => {
    const { url } = await sharedServer();
    const flow = `
name: parked-features
env: {APP_ENV: ci}
vars: {VERSION: "1.0"}
steps:
  - name: build
    action: shell.run
    args: {script: 'echo "build $APP_ENV $VERSION"; echo "ARTIFACT=app-$VERSION" >> "$RUNYARD_OUTPUT"'}
    rollback: {action: shell.run, args: {script: 'echo "undo $ARTIFACT"'}}
  - name: go-live
    action: approval
    args: {message: "ship \${VERSION}?", approvers: [role:admin]}
  - name: deploy
    action: shell.run
    args: {script: 'echo "deploy $ARTIFACT"; exit 3'}
`;
    // Two runs of one text with different vars: they share one frozen parse.
    const first = await submit(url, flow, { VERSION: "2.0" });
    const second = await submit(url, flow);
    await waitForParked(url, 2);
    started.push(await startRunner(url, await runnerToken(url), { id: "features", capacity: 2 }));
    for (const id of [first, second]) {
      await waitForRun(url, id, (run) =>
        run.steps.some((s) => s.name === "go-live" && s.status === "waiting"),
      );
      expect(
        (await api(url, "POST", `/api/runs/${id}/steps/go-live/approve`, { comment: "ok" })).status,
      ).toBe(200);
    }
    for (const [id, version] of [
      [first, "2.0"],
      [second, "1.0"],
    ] as const) {
      const run = await waitForRun(url, id, isFinal);
      expect(run.status).toBe("failed");
      const events = await readEvents(url, id);
      expectWholeLog(events);
      expect(outputOf(events)).toBe(`build ci ${version}\ndeploy app-${version}\nundo app-${version}\n`);
    }
  }, 60_000);

  it("cancels a parked run of its group when a later run of the group cancels in progress", async () => {
    const { url } = await sharedServer();
    const flow = (n: string) =>
      oneStep(
        `replaced-${n}`,
        `echo replaced-${n}`,
        "concurrency: {group: deploy, cancel_in_progress: true}\n",
      );
    const older = await submit(url, flow("1"));
    await waitForParked(url, 1);
    const newer = await submit(url, flow("2"));
    expect((await waitForRun(url, older, isFinal)).status).toBe("canceled");
    await waitForParked(url, 1);
    started.push(await startRunner(url, await runnerToken(url), { id: "replacer" }));
    expect((await waitForRun(url, newer, isFinal)).status).toBe("success");
    expectNothingRan(await readEvents(url, older));
    expectWholeLog(await readEvents(url, newer));
  }, 60_000);

  it("ends a parked run as any run when the runner that took its job stops (SIGTERM) before the step ends", async () => {
    const { url } = await sharedServer();
    const runId = await submit(url, oneStep("runner-stopped", "echo began; sleep 30", ""));
    await waitForParked(url, 1);
    const runner = await startRunner(url, await runnerToken(url), {
      id: "stopping",
      env: { RUNYARD_SHUTDOWN_GRACE_MS: "200" },
    });
    started.push(runner);
    await waitForRun(url, runId, (run) => run.steps.some((s) => s.status === "running"));
    await runner.kill("SIGTERM");
    const run = await waitForRun(url, runId, isFinal);
    expect(run.status).toBe("interrupted");
    expect(run.error?.code).toBe("RUNNER_LOST");
    expectWholeLog(await readEvents(url, runId));
  }, 60_000);

  it("runs a parked graph run (matrix, retry, when) as runners of each group come, every event once and in order", async () => {
    const { url } = await sharedServer();
    const markerDir = stepDir();
    const marker = join(markerDir, "failed-once");
    const runId = await submit(
      url,
      `
name: parked-graph
inventory:
  hosts:
    alpha: {group: alpha-g}
    beta: {group: beta-g}
steps:
  - name: on-alpha
    depends: []
    targets: [alpha]
    matrix: {N: ["1", "2"], include: [{N: "3"}]}
    action: shell.run
    args: {script: 'echo "alpha $N"'}
  - name: on-beta
    depends: []
    targets: [beta]
    retry_count: 1
    retry_delay_seconds: 0.1
    action: shell.run
    args: {cwd: ${markerDir}, script: 'if [ -e ${marker} ]; then echo "beta again"; else touch ${marker}; echo "beta fails"; exit 1; fi'}
  - name: never
    depends: [on-alpha]
    when: \${SKIP} == "no"
    targets: [alpha]
    action: shell.run
    args: {script: echo never}
  - name: last
    depends: [on-alpha, on-beta]
    targets: [alpha]
    action: shell.run
    args: {script: echo last}
`,
      { SKIP: "yes" },
    );
    await waitForParked(url, 1);
    started.push(
      await startRunner(url, await runnerToken(url, "alpha-g"), { id: "alpha-1", group: "alpha-g" }),
    );
    const halfway = await waitForRun(url, runId, (run) => {
      const alpha = run.steps.filter((s) => s.name.startsWith("on-alpha"));
      return alpha.length === 3 && alpha.every((s) => s.status === "success");
    });
    expect(halfway.status).toBe("running");
    started.push(await startRunner(url, await runnerToken(url, "beta-g"), { id: "beta-1", group: "beta-g" }));
    const run = await waitForRun(url, runId, isFinal);
    expect(run.status).toBe("success");
    expect(run.steps.find((s) => s.name === "on-beta")?.attempts).toBe(2);
    expect(run.steps.find((s) => s.name === "never")?.status).toBe("skipped");
    const events = await readEvents(url, runId);
    expectWholeLog(events);
    expect(outputOf(events)).toContain("beta again");
    expect(
      outputOf(events)
        .match(/alpha \d/g)
        ?.sort(),
    ).toEqual(["alpha 1", "alpha 2", "alpha 3"]);
    await waitForParked(url, 0);
  }, 60_000);
  it("posts each state change of a parked run once to its notify target", async () => {
    const { url } = await sharedServer();
    const hook = await receiver();
    const runId = await submitAs(
      url,
      await memberToken(url, "acme"),
      oneStep("parked-notify", "echo notified", `notify: "${hook.url}"\n`),
    );
    await waitForParked(url, 1);
    await tenantRunner(url, "acme", "acme-notify");
    expect((await waitForRun(url, runId, isFinal)).status).toBe("success");
    await until("the run's end is posted", () =>
      hook.changes.find((c) => c.status === "success" && c.step === null),
    );
    expectWholeLog(await readEvents(url, runId));
    const posted = hook.changes.map((c) => `${c.status}:${c.step ?? ""}`);
    expect(posted.sort()).toEqual(["queued:", "running:", "running:only", "success:", "success:only"]);
    expect(new Set(hook.changes.map((c) => c.version)).size).toBe(hook.changes.length);
  }, 60_000);

  it("never parks a run waiting for its concurrency group, and a parked holder keeps the group's slot", async () => {
    const { url } = await sharedServer();
    const flow = (n: string) => oneStep(`grouped-${n}`, `echo grouped-${n}`, "concurrency: deploy\n");
    const holder = await submit(url, flow("1"));
    await waitForParked(url, 1);
    const waiting = await submit(url, flow("2"));
    await until("the second run says it waits for the group", async () =>
      (
        await api<{ waiting_for?: Array<{ reason: string }> }>(url, "GET", `/api/runs/${waiting}`)
      ).body.waiting_for?.find((w) => w.reason.includes("concurrency group deploy")),
    );
    // A run submitted after it is parked: the park rounds have looked at the waiting one too.
    const other = await submit(url, oneStep("ungrouped", "echo ungrouped"));
    await waitForParked(url, 2);
    expect((await api<{ status: string }>(url, "GET", `/api/runs/${waiting}`)).body.status).toBe("queued");
    started.push(await startRunner(url, await runnerToken(url), { id: "group-runner", capacity: 4 }));
    for (const id of [holder, waiting, other]) {
      expect((await waitForRun(url, id, isFinal)).status).toBe("success");
      expectWholeLog(await readEvents(url, id));
    }
    const first = await readEvents(url, holder);
    const second = await readEvents(url, waiting);
    const end = first.find((e) => e.type === "run.finished")?.ts ?? "";
    const start = second.find((e) => e.type === "run.started")?.ts ?? "";
    expect(start >= end, "the second run of the group starts after the first ended").toBe(true);
    await waitForParked(url, 0);
  }, 60_000);

  it("cancels parked runs while a runner claims their jobs: each ends canceled, no step runs to its end", async () => {
    const { url } = await sharedServer();
    const ids: string[] = [];
    for (let i = 0; i < 8; i++)
      ids.push(await submit(url, oneStep(`race-${i}`, "echo began; sleep 4; echo finished")));
    await waitForParked(url, 8);
    started.push(await startRunner(url, await runnerToken(url), { id: "race-runner", capacity: 8 }));
    const answers = await Promise.all(
      ids.map((id) => api<{ status: string }>(url, "POST", `/api/runs/${id}/cancel`)),
    );
    expect(answers.map((a) => a.status)).toEqual(ids.map(() => 200));
    for (const id of ids) {
      expect((await waitForRun(url, id, isFinal)).status, id).toBe("canceled");
      const events = await readEvents(url, id);
      expectWholeLog(events);
      expect(outputOf(events)).not.toContain("finished");
    }
    await expectNothingAfterTheEnd(url, ids);
    await waitForParked(url, 0);
  }, 60_000);

  it("carries on runs parked when the server was killed -9, once a runner comes to the restarted server", async () => {
    const home = tempDir();
    const first = await server(home);
    const port = Number(new URL(first.url).port);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push(await submit(first.url, oneStep(`restart-${i}`, `echo restart-${i}`)));
    await waitForParked(first.url, 3);
    await first.proc.kill("SIGKILL");
    const again = await server(home, port);
    await waitForParked(again.url, 3);
    started.push(
      await startRunner(again.url, await runnerToken(again.url), { id: "after-restart", capacity: 3 }),
    );
    for (const [i, id] of ids.entries()) {
      expect((await waitForRun(again.url, id, isFinal)).status).toBe("success");
      const events = await readEvents(again.url, id);
      expectWholeLog(events);
      expect(outputOf(events)).toBe(`restart-${i}\n`);
    }
  }, 60_000);

  it("fails a parked run whose stored secret was removed, SECRET_MISSING, and the step does not run to its end", async () => {
    const { url } = await sharedServer();
    const acme = await memberToken(url, "acme");
    expect(
      (await api(url, "PUT", "/api/secrets/GONE_KEY", { value: "gone-value-0123456789" }, acme)).status,
    ).toBeLessThan(300);
    const runId = await submitAs(
      url,
      acme,
      oneStep("secret-gone", "echo began; sleep 1; echo finished", "secrets: [GONE_KEY]\n"),
    );
    await waitForParked(url, 1);
    expect((await api(url, "DELETE", "/api/secrets/GONE_KEY", undefined, acme)).status).toBeLessThan(300);
    await tenantRunner(url, "acme", "acme-secret");
    const run = await waitForRun(url, runId, isFinal);
    expect(run.status).toBe("failed");
    expect(run.error?.code).toBe("SECRET_MISSING");
    const events = await readEvents(url, runId);
    expectWholeLog(events);
    expect(outputOf(events)).not.toContain("finished");
  }, 60_000);

  it("keeps a parked run of tenant A from a member of tenant B, and two tenants' runs of one text apart", async () => {
    const { url } = await sharedServer();
    const [acme, globex] = [await memberToken(url, "acme"), await memberToken(url, "globex")];
    await api(url, "PUT", "/api/secrets/SHARED_NAME", { value: "acme-secret-value-0123" }, acme);
    await api(url, "PUT", "/api/secrets/SHARED_NAME", { value: "globex-secret-value-0123" }, globex);
    const text = oneStep(
      "same-text",
      'echo "who=$WHO key=$SHARED_NAME"; printf %s "$SHARED_NAME" | wc -c',
      "secrets: [SHARED_NAME]\nvars: {WHO: nobody}\n",
    );
    const a = await submitAs(url, acme, text, { WHO: "acme" });
    const b = await submitAs(url, globex, text, { WHO: "globex" });
    await waitForParked(url, 2);
    for (const [method, path] of [
      ["GET", `/api/runs/${a}`],
      ["POST", `/api/runs/${a}/cancel`],
      ["GET", `/api/runs/${a}/events`],
    ] as const)
      expect((await api(url, method, path, undefined, globex)).status, `${method} ${path}`).toBe(404);
    await tenantRunner(url, "globex", "globex-1");
    expect((await waitForRun(url, b, isFinal)).status).toBe("success");
    expect((await api<{ status: string }>(url, "GET", `/api/runs/${a}`)).body.status).toBe("queued");
    expect(await gauge(url, "runyard_replica_runs_parked")).toBe(1);
    await tenantRunner(url, "acme", "acme-1");
    expect((await waitForRun(url, a, isFinal)).status).toBe("success");
    const [outA, outB] = [outputOf(await readEvents(url, a)), outputOf(await readEvents(url, b))];
    expect(outA).toBe(`who=acme key=***\n${"acme-secret-value-0123".length}\n`);
    expect(outB).toBe(`who=globex key=***\n${"globex-secret-value-0123".length}\n`);
  }, 60_000);

  it("retries on the next runner the step of a parked run whose runner was killed -9 after taking it up", async () => {
    const { url } = await sharedServer();
    const markerDir = stepDir();
    const marker = join(markerDir, "first-attempt");
    const runId = await submit(
      url,
      oneStep(
        "retried-elsewhere",
        `if [ -e ${marker} ]; then echo second; else touch ${marker}; sleep 30; fi`,
        "",
        markerDir,
      ).replace(
        "    action: shell.run",
        "    retry_count: 1\n    retry_delay_seconds: 0.1\n    action: shell.run",
      ),
    );
    await waitForParked(url, 1);
    const doomed = await startRunner(url, await runnerToken(url), { id: "first-taker" });
    started.push(doomed);
    // The first attempt began its script (a step is running once its runner accepts it, before
    // the script's first line): killed earlier, the second attempt would be the one to sleep.
    await until("the first attempt touched its marker", async () => (existsSync(marker) ? true : undefined));
    await doomed.kill("SIGKILL");
    started.push(await startRunner(url, await runnerToken(url), { id: "second-taker" }));
    const run = await waitForRun(url, runId, isFinal);
    expect(run.status).toBe("success");
    expect(run.steps[0]?.attempts).toBe(2);
    const events = await readEvents(url, runId);
    expectWholeLog(events);
    expect(outputOf(events)).toBe("second\n");
  }, 60_000);

  it("ends a parked run RUNNER_LOST when the runner that took its job is killed -9", async () => {
    const { url } = await sharedServer();
    const runId = await submit(url, oneStep("runner-killed", "echo began; sleep 30"));
    await waitForParked(url, 1);
    const runner = await startRunner(url, await runnerToken(url), { id: "doomed" });
    started.push(runner);
    await waitForRun(url, runId, (run) => run.steps.some((s) => s.status === "running"));
    await runner.kill("SIGKILL");
    const run = await waitForRun(url, runId, isFinal);
    expect(run.status).toBe("interrupted");
    expect(run.error?.code).toBe("RUNNER_LOST");
    expectWholeLog(await readEvents(url, runId));
  }, 60_000);
});

const adminUrl = inject("postgresAdminUrl");

/**
 * Two replicas of one fresh PostgreSQL database. Their lease is 5 s: on a busy machine a replica
 * starting up saw a heartbeat write take 3.5 s, and with a 2 s lease the other presumed it dead
 * before it listened (the tests here are about parked runs, not how soon a death is seen).
 */
async function replicas(leaseMs = 5000): Promise<[TestServer, TestServer]> {
  const pair = await startReplicas(leaseMs);
  started.push(pair[0].proc, pair[1].proc);
  return pair;
}

async function startReplicas(leaseMs: number): Promise<[TestServer, TestServer]> {
  const env = {
    RUNYARD_DATABASE_URL: await createTestDatabase(adminUrl ?? ""),
    RUNYARD_SECRET_KEY: "parked-attack-secret-key-0123456789abcdef",
    RUNYARD_REPLICA_HEARTBEAT_MS: "300",
    RUNYARD_REPLICA_LEASE_MS: String(leaseMs),
  };
  const a = await startTestServer(tempDir(), env);
  const b = await startTestServer(tempDir(), env);
  return [a, b];
}

/**
 * Two such replicas for the tests that stop neither, started at the first's start; each test
 * leaves no run parked or going and kills its runners, as with the shared server above.
 */
let sharedPair: Promise<[TestServer, TestServer]> | undefined;
function sharedReplicas(): Promise<[TestServer, TestServer]> {
  sharedPair ??= startReplicas(5000);
  return sharedPair;
}
afterAll(async () => {
  if (sharedPair) await Promise.all((await sharedPair).map((replica) => replica.proc.kill("SIGKILL")));
});

describe.skipIf(!adminUrl)("parked runs of PostgreSQL replicas under attack", () => {
  it("retries on another runner the step of a parked run whose runner was lost before the run was adopted", async () => {
    // A's runs are adopted 6 s after it dies: the runner's job is lost before then.
    const [a, b] = await replicas(6000);
    const markerDir = stepDir();
    const marker = join(markerDir, "first-attempt");
    const runId = await submit(
      a.url,
      oneStep(
        "lost-then-adopted",
        `if [ -e ${marker} ]; then echo second; else touch ${marker}; echo began; sleep 30; fi`,
        "",
        markerDir,
      ).replace(
        "    action: shell.run",
        "    retry_count: 1\n    retry_delay_seconds: 0.1\n    action: shell.run",
      ),
    );
    await waitForParked(a.url, 1);
    await a.proc.kill("SIGKILL");
    const { body: token } = await api<{ id: string; token: string }>(b.url, "POST", "/api/tokens", {
      kind: "runner",
      name: "lost runner",
    });
    started.push(await startRunner(b.url, token.token, { id: "lost-runner" }));
    // Its first batch is stored: the runner took the job up (its accept came before).
    await until("the first attempt's output is stored", async () =>
      existsSync(marker) &&
      (await api<{ last_seq: number }>(b.url, "GET", `/api/runs/${runId}`)).body.last_seq >= 2
        ? true
        : undefined,
    );
    // Revoked: its job is lost at once (taken up), and the runner can never come back for it.
    expect((await api(b.url, "DELETE", `/api/tokens/${token.id}`)).status).toBeLessThan(300);
    started.push(await startRunner(b.url, await runnerToken(b.url), { id: "second-runner" }));
    const run = await waitForRun(b.url, runId, isFinal, 30_000);
    expect(run.status).toBe("success");
    expect(run.steps[0]?.attempts).toBe(2);
  }, 60_000);

  it("carries on at once, on the other replica, runs parked on a replica stopped with SIGTERM", async () => {
    const [a, b] = await replicas();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await submit(a.url, oneStep(`handed-${i}`, `echo handed-${i}`)));
    await waitForParked(a.url, 3);
    await a.proc.kill("SIGTERM");
    await waitForParked(b.url, 3);
    started.push(await startRunner(b.url, await runnerToken(b.url), { id: "heir", capacity: 3 }));
    for (const [i, id] of ids.entries()) {
      expect((await waitForRun(b.url, id, isFinal)).status).toBe("success");
      const events = await readEvents(b.url, id);
      expectWholeLog(events);
      expect(outputOf(events)).toBe(`handed-${i}\n`);
    }
  }, 60_000);

  it("carries on, on the replica that adopts them, runs parked on a replica killed -9", async () => {
    const [a, b] = await replicas();
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await submit(a.url, oneStep(`orphan-${i}`, `echo orphan-${i}`)));
    await waitForParked(a.url, 4);
    await a.proc.kill("SIGKILL");
    await waitForParked(b.url, 4);
    started.push(await startRunner(b.url, await runnerToken(b.url), { id: "adopter", capacity: 4 }));
    for (const [i, id] of ids.entries()) {
      expect((await waitForRun(b.url, id, isFinal)).status).toBe("success");
      const events = await readEvents(b.url, id);
      expectWholeLog(events);
      expect(outputOf(events)).toBe(`orphan-${i}\n`);
    }
  }, 60_000);

  it("cancels through replica B runs parked on A while B's runner claims their jobs: each ends canceled", async () => {
    const [a, b] = await sharedReplicas();
    const ids: string[] = [];
    for (let i = 0; i < 8; i++)
      ids.push(await submit(a.url, oneStep(`far-race-${i}`, "echo began; sleep 20; echo finished")));
    await waitForParked(a.url, 8);
    started.push(await startRunner(b.url, await runnerToken(b.url), { id: "far-racer", capacity: 8 }));
    const answers = await Promise.all(ids.map((id) => api(b.url, "POST", `/api/runs/${id}/cancel`)));
    expect(answers.map((answer) => answer.status)).toEqual(ids.map(() => 200));
    for (const id of ids) {
      expect((await waitForRun(b.url, id, isFinal)).status, id).toBe("canceled");
      expectWholeLog(await readEvents(b.url, id));
    }
    await expectNothingAfterTheEnd(b.url, ids);
    await waitForParked(a.url, 0);
  }, 60_000);

  it("runs 24 runs parked on A at once on a runner of B, every log whole", async () => {
    const [a, b] = await sharedReplicas();
    const ids: string[] = [];
    for (let i = 0; i < 24; i++) ids.push(await submit(a.url, oneStep(`burst-${i}`, `echo burst-${i}`)));
    await waitForParked(a.url, 24);
    started.push(await startRunner(b.url, await runnerToken(b.url), { id: "burst", capacity: 24 }));
    for (const [i, id] of ids.entries()) {
      expect((await waitForRun(b.url, id, isFinal)).status).toBe("success");
      const events = await readEvents(b.url, id);
      expectWholeLog(events);
      expect(outputOf(events)).toBe(`burst-${i}\n`);
    }
  }, 60_000);
});
