import { admin, serverProcess } from "./server.js";
import type { BenchRow } from "./table.js";

/** The measured submit: a valid workflow of about 10 KB (20 steps of 500 characters). */
const tenKb = `name: ten-kb\nsteps:\n${Array.from(
  { length: 20 },
  (_, i) => `  - name: s${i}\n    action: cmd.run\n    args: {cmd: "echo ${"x".repeat(440)}"}\n`,
).join("")}`;

const big = (n: number) => "A".repeat(n);
/** How long each member waits between one answer and its next request. */
const memberPauseMs = 200;

/**
 * The worst input of each kind a member may send, as a member sends it: each is refused, and
 * none may hold the server (a did-you-mean over every time zone, a regular expression or a parse
 * over 600 KB, a suggestion among thousands of steps, an expression nested thousands deep).
 */
const worstInputs: Array<{ kind: string; path: string; body: () => unknown }> = [
  {
    kind: "timezone",
    path: "/api/workflows",
    body: () => ({
      name: "tz",
      workflow: `name: tz\nschedule: {cron: "* * * * *", timezone: "Europe/${big(600_000)}"}\nsteps:\n  - name: a\n    action: cmd.run\n    args: {cmd: "true"}\n`,
    }),
  },
  {
    kind: "cron",
    path: "/api/workflows",
    body: () => ({
      name: "cron",
      workflow: `name: cron\nschedule: {cron: "${"1,".repeat(300_000)}1 * * * *"}\nsteps:\n  - name: a\n    action: cmd.run\n    args: {cmd: "true"}\n`,
    }),
  },
  {
    kind: "choice",
    path: "/api/workflows",
    body: () => ({
      name: "choice",
      workflow: `name: choice\nschedule: {cron: "* * * * *", overlap: "${big(600_000)}"}\nsteps:\n  - name: a\n    action: cmd.run\n    args: {cmd: "true"}\n`,
    }),
  },
  { kind: "name", path: "/api/workflows", body: () => ({ name: big(600_000), workflow: tenKb }) },
  {
    kind: "label",
    path: "/api/runs",
    body: () => ({
      workflow: `name: label\ninventory:\n  hosts:\n    b: {group: linux, labels: ["${big(600_000)}"]}\nsteps:\n  - name: a\n    targets: [b]\n    action: cmd.run\n    args: {cmd: "true"}\n`,
    }),
  },
  {
    kind: "unknown needs among 3,000 steps",
    path: "/api/workflows/validate",
    body: () => ({
      workflow: `name: needs\nsteps:\n${Array.from(
        { length: 3000 },
        (_, i) =>
          `  - name: step-${String(i).padStart(60, "0")}\n    needs: [step-${String(i).padStart(60, "1")}]\n    action: cmd.run\n    args: {cmd: "true"}\n`,
      ).join("")}`,
    }),
  },
  {
    kind: "expression nested 100,000 deep",
    path: "/api/workflows/validate",
    body: () => ({
      workflow: `name: expr\nsteps:\n  - name: a\n    when: "${"(".repeat(100_000)}1${")".repeat(100_000)}"\n    action: cmd.run\n    args: {cmd: "true"}\n`,
    }),
  },
  {
    kind: "YAML of 1 MB",
    path: "/api/workflows/validate",
    body: () => ({
      workflow: `name: big\nsteps:\n${Array.from(
        { length: 2200 },
        (_, i) => `  - name: s${i}\n    command: echo ${"x".repeat(400)}\n`,
      ).join("")}`,
    }),
  },
];

async function post(url: string, path: string, body: unknown, token: string): Promise<number> {
  const response = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  await response.arrayBuffer();
  return response.status;
}

/** `count` 10 KB submits, one every 20 ms or so (a tenant's CI): each one's time, sorted. */
async function submitTimes(url: string, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const status = await post(url, "/api/runs", { workflow: tenKb }, admin);
    if (status !== 201) throw new Error(`the 10 KB submit answered ${status}`);
    times.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return times.sort((a, b) => a - b);
}

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;

/**
 * A 10 KB submit's p99 on an idle server, then while members of another tenant send the worst
 * input of each kind (`worstInputs`), each member sending its next one 200 ms after the answer
 * to the last: the target is at most 1.5 times the idle figure.
 */
export async function submitWhileWorstInputs(): Promise<BenchRow> {
  const server = await serverProcess();
  try {
    const made = await fetch(`${server.url}/api/tokens`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ kind: "user", name: "member", tenant_id: "other" }),
    });
    const member = ((await made.json()) as { token: string }).token;
    await submitTimes(server.url, 50);
    const idle = await submitTimes(server.url, 400);
    let sending = true;
    const answers = new Map<string, { count: number; worstMs: number; statuses: Set<number> }>();
    const members = worstInputs.map(async ({ kind, path, body }) => {
      const text = body();
      const seen = { count: 0, worstMs: 0, statuses: new Set<number>() };
      answers.set(kind, seen);
      while (sending) {
        const started = performance.now();
        seen.statuses.add(await post(server.url, path, text, member));
        seen.worstMs = Math.max(seen.worstMs, performance.now() - started);
        seen.count += 1;
        // A member sends a request, reads the answer, and sends the next a moment later: a
        // steady stream of the worst inputs, not a flood of the network itself.
        await new Promise((resolve) => setTimeout(resolve, memberPauseMs));
      }
    });
    const busy = await submitTimes(server.url, 400);
    sending = false;
    await Promise.all(members);
    const idleP99 = quantile(idle, 0.99);
    const busyP99 = quantile(busy, 0.99);
    const sent = [...answers].map(
      ([kind, seen]) =>
        `${kind}: ${seen.count} sent, ${[...seen.statuses].join("/")}, slowest ${Math.round(seen.worstMs)} ms`,
    );
    return {
      name: "10 KB submit p99 while members send the worst inputs of each kind, vs idle",
      measured: `${busyP99.toFixed(1)} ms (p50 ${quantile(busy, 0.5).toFixed(1)} ms)`,
      baseline: `${idleP99.toFixed(1)} ms idle (p50 ${quantile(idle, 0.5).toFixed(1)} ms)`,
      ratio: busyP99 / idleP99,
      target: "<= 1.5",
      note: `worst inputs sent meanwhile: ${sent.join("; ")}`,
    };
  } finally {
    server.child.kill();
  }
}
