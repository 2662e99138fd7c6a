import { readdirSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import { describeHealthTries, healthLimit, healthWhileTries } from "./helpers/health-latency.js";
import { pacedMs } from "./helpers/machine-pace.js";
import { adminToken, api, createToken, startTestServer, type TestServer } from "./helpers/server.js";

/*
 * JSON request bodies past 64 KiB are read on a thread of the server's own (src/server/json-body.ts),
 * so a costly one holds no other request: those bodies must read exactly as Fastify read them on
 * the event loop, and be refused the same way when they are not JSON.
 */

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer(tempDir());
}, 60_000);

afterAll(async () => {
  await server?.proc.kill();
});

async function post(path: string, body: string) {
  const answer = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body,
  });
  return {
    status: answer.status,
    body: (await answer.json()) as {
      ok?: boolean;
      name?: string;
      vars?: Record<string, unknown>;
      errors?: { line: number; message: string }[];
      error?: { code: string; message: string; hint?: string };
    },
  };
}

/** A valid workflow of about `kb` KB named `name`, with a var whose default is `value`. */
function workflowOf(name: string, kb: number, value: string): string {
  const steps = Array.from(
    { length: Math.ceil(kb / 0.5) },
    (_, i) => `  - name: s${i}\n    action: cmd.run\n    args: {cmd: "echo ${"x".repeat(440)}"}\n`,
  );
  return `name: ${name}\nvars:\n  greeting: "${value}"\nsteps:\n${steps.join("")}`;
}

describe("large JSON bodies", () => {
  it("reads a body past 64 KiB as a small one is read: strings, escapes and unicode intact", async () => {
    const value = 'h\\u00e9llo \\"quoted\\" \\\\ ✓ 😀';
    const small = await post(
      "/api/workflows/validate",
      JSON.stringify({ workflow: workflowOf("small", 2, value) }),
    );
    const large = await post(
      "/api/workflows/validate",
      JSON.stringify({ workflow: workflowOf("large", 300, value) }),
    );
    expect(small.status, JSON.stringify(small.body)).toBe(200);
    expect(large.status, JSON.stringify(large.body)).toBe(200);
    expect(large.body.ok).toBe(true);
    expect(large.body.name).toBe("large");
    expect(large.body.vars).toEqual(small.body.vars);
    expect(JSON.stringify(large.body.vars)).toContain("héllo");
  });

  it("answers bodies read at the same time each with its own", async () => {
    const names = ["one", "two", "three", "four", "five", "six"];
    const answers = await Promise.all(
      names.map((name, i) =>
        post(
          "/api/workflows/validate",
          JSON.stringify({
            workflow: i % 2 ? workflowOf(name, 100 + i * 20, name) : `name: ${name}\nsteps: [oops`,
          }),
        ),
      ),
    );
    answers.forEach((answer, i) => {
      expect(answer.status).toBe(200);
      if (i % 2)
        expect([answer.body.ok, answer.body.name, answer.body.vars?.greeting]).toEqual([
          true,
          names[i],
          names[i],
        ]);
      else expect(answer.body.ok).toBe(false);
    });
  });

  it("refuses a body past 64 KiB that is not JSON as a small one is refused: 400, saying where", async () => {
    const broken = `{"workflow": "${"x".repeat(100_000)}", }`;
    const small = await post("/api/workflows/validate", '{"workflow": "name: x", }');
    const large = await post("/api/workflows/validate", broken);
    for (const answer of [small, large]) {
      expect(answer.status).toBe(400);
      expect(answer.body.error?.code).toBe("INVALID_INPUT");
    }
    expect(large.body.error?.message).toMatch(/^the request body is not valid JSON: .*position \d+/);
    // Nothing of what was sent is echoed back.
    expect(JSON.stringify(large.body).length).toBeLessThan(1000);
  });

  it("refuses a __proto__ or constructor.prototype key in a large body, as Fastify does in a small one", async () => {
    const padding = "x".repeat(100_000);
    for (const poisoned of [
      `{"workflow": "${padding}", "__proto__": {"admin": true}}`,
      `{"workflow": "${padding}", "constructor": {"prototype": {"admin": true}}}`,
    ]) {
      const answer = await post("/api/workflows/validate", poisoned);
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect(answer.body.error?.code).toBe("INVALID_INPUT");
    }
    const small = await post(
      "/api/workflows/validate",
      '{"workflow": "name: x", "__proto__": {"admin": true}}',
    );
    expect(small.status).toBe(400);
  });

  it("refuses a large body of more than 50,000 values before any route reads it, and takes one of fewer", async () => {
    const items = (count: number) =>
      JSON.stringify({ workflow: "name: x\nsteps: []\n", extra: Array(count).fill(0) });
    const over = await post("/api/workflows/validate", items(50_000));
    expect(over.status).toBe(400);
    expect(over.body.error).toEqual({
      code: "INVALID_INPUT",
      message: "the request body holds more than 50000 JSON values",
      hint: "Send fewer fields, items or variables; pass bulk data as a file or an artifact.",
    });
    // Read, then refused by the route for its unknown field, as any small body would be.
    const under = await post("/api/workflows/validate", items(40_000));
    expect(under.status).toBe(400);
    expect(under.body.error?.message).toMatch(/extra/);
  });
});

describe("a large body with an Idempotency-Key", () => {
  it("holds no other request while the key's request is compared, and is refused by the route's caps first", async () => {
    const { body: created } = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "user",
      name: "keyed-member",
      tenant_id: "keyed",
    });
    // 49,000 strings of quotes, 7.2 MB, under a field the route does not take: under the body's
    // 8 MiB and the 50,000 values a large body may hold, cheap to read on the JSON thread and to
    // hand over. Comparing it as sorted JSON took 0.12 to 0.45 s on the event loop (1.6 s for a
    // 7.7 MB body on a busy machine), before the route refused it.
    const padding = Array.from({ length: 49_000 }, (_, i) => `${'"'.repeat(70)}${i}`);
    const body = JSON.stringify({
      kind: "workflow",
      workflow: "version: v0.1\nname: keyed\nsteps: []\n",
      padding,
    });
    const submit = async (key?: string) => {
      const response = await fetch(`${server.url}/api/runs`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${created.token}`,
          "content-type": "application/json",
          ...(key ? { "idempotency-key": key } : {}),
        },
        body,
      });
      const answer = (await response.json()) as { error?: { code: string; message: string } };
      expect(response.status, JSON.stringify(answer)).toBe(400);
      expect(answer.error?.code).toBe("INVALID_INPUT");
      expect(answer.error?.message).toMatch(/padding/);
    };
    // The baseline is the same body without a key: what reading and handing it over costs the
    // event loop on this machine, which the key's compare must not add to.
    const tries = await healthWhileTries(
      server.url,
      () => submit("large-body-key"),
      () => submit(),
    );
    const last = tries.at(-1)!;
    expect(last.during, describeHealthTries(tries, "the submit")).toBeLessThan(healthLimit(last));
    // The refused request claimed nothing: the key then serves a good submit.
    const good = await fetch(`${server.url}/api/runs`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${created.token}`,
        "content-type": "application/json",
        "idempotency-key": "large-body-key",
      },
      body: JSON.stringify({
        kind: "workflow",
        workflow:
          "version: v0.1\nname: keyed\ninventory:\n  hosts:\n    x: {group: nowhere}\nsteps:\n  - name: s\n    targets: [x]\n    action: cmd.run\n    args: {cmd: echo hi}\n",
      }),
    });
    expect(good.status, await good.clone().text()).toBe(201);
  }, 60_000);
});

describe("a large body with an Idempotency-Key, read on the JSON thread", () => {
  it("is compared as a small one is: the same body in another key order replays the first answer", async () => {
    const workflow = `version: v0.1\nname: keyed-large\n# ${"x".repeat(100_000)}\ninventory:\n  hosts:\n    x: {group: nowhere}\nsteps:\n  - name: s\n    targets: [x]\n    action: cmd.run\n    args: {cmd: echo hi}\n`;
    const send = (body: string) =>
      fetch(`${server.url}/api/runs`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${adminToken}`,
          "content-type": "application/json",
          "idempotency-key": "large-keyed-submit",
        },
        body,
      });
    const first = await send(JSON.stringify({ kind: "workflow", workflow, vars: { A: "1" } }));
    const created = (await first.json()) as { run_id: string };
    expect(first.status, JSON.stringify(created)).toBe(201);
    const again = await send(JSON.stringify({ vars: { A: "1" }, workflow, kind: "workflow" }));
    expect(again.status).toBe(201);
    expect(again.headers.get("idempotency-replayed")).toBe("true");
    expect(((await again.json()) as { run_id: string }).run_id).toBe(created.run_id);
    const other = await send(JSON.stringify({ kind: "workflow", workflow, vars: { A: "2" } }));
    expect(other.status).toBe(409);
    expect(((await other.json()) as { error: { code: string } }).error.code).toBe("IDEMPOTENCY_KEY_REUSED");
  });
});

describe("a member's submit that would stall the server", () => {
  let acme = "";
  let acmeTeammate = "";
  let globex = "";

  beforeAll(async () => {
    acme = await createToken(server.url, { kind: "user", name: "acme-member", tenant_id: "acme" });
    acmeTeammate = await createToken(server.url, { kind: "user", name: "acme-teammate", tenant_id: "acme" });
    globex = await createToken(server.url, { kind: "user", name: "globex-member", tenant_id: "globex" });
  });

  it("400,000 vars are refused at once, and the server answers others meanwhile", async () => {
    const vars = Object.fromEntries(Array.from({ length: 400_000 }, (_, i) => [`V${i}`, ""]));
    const workflow = ["version: v0.1", "name: many", "steps: []", ""].join("\n");
    const body = JSON.stringify({ kind: "workflow", workflow, vars });
    // Before the cap it took 3 s to check and 12 s to queue, the server answering nothing else;
    // then the body's JSON.parse on the event loop held every request 0.3 s on a quiet machine
    // and 3 s on a busy one. Now the body is read on a thread of its own: /health answers during
    // the submit about as fast as it does without one.
    // The baseline is a body of as many bytes in a few values: what receiving and handing it over
    // costs the event loop on this machine (under a full suite on a slow host, 180 ms once), which
    // counting its values must not add to.
    const fewValues = JSON.stringify({ kind: "workflow", workflow, padding: "" });
    const sameBytes = fewValues.replace(
      '"padding":""',
      `"padding":"${"x".repeat(body.length - fewValues.length)}"`,
    );
    expect(sameBytes.length).toBe(body.length);
    const submit = async (text: string) => {
      const answer = await fetch(`${server.url}/api/runs`, {
        method: "POST",
        headers: { authorization: `Bearer ${globex}`, "content-type": "application/json" },
        body: text,
      });
      const refused = (await answer.json()) as { error: { code: string; message: string; hint: string } };
      expect(answer.status).toBe(400);
      expect(refused.error.code).toBe("INVALID_INPUT");
      return refused.error;
    };
    const tries = await healthWhileTries(
      server.url,
      async () => {
        const refused = await submit(body);
        expect(refused.message).toBe("the request body holds more than 50000 JSON values");
        expect(refused.hint).toMatch(/pass bulk data as a file or an artifact/);
      },
      async () => expect((await submit(sameBytes)).message).toMatch(/padding/),
    );
    const last = tries.at(-1)!;
    // 8 s on a quiet machine, stretched as this one is slower (8.5 s on a host five times slower).
    expect(last.took).toBeLessThan(pacedMs(8_000));
    expect(last.during, describeHealthTries(tries, "the submit")).toBeLessThan(healthLimit(last));
    // Up to three tries, each the submit and as long again of quiet /health: past 60 s on a slow host.
  }, 150_000);

  // A var's value was capped only by the body (8 MiB), and each run of a list carries its vars
  // whole: five runs with one 7.5 MB var made the tenant's GET /api/runs 37.5 MB (1.4 to 1.7 s).
  // Such a var cannot reach a step anyway (execve refuses an environment string past 128 KiB).
  it("a member's run with a 7.5 MB var is refused, saying the cap, and its tenant's runs list stays small", async () => {
    const workflow = [
      "version: v0.1",
      "name: big",
      "inventory:",
      "  hosts:",
      "    nowhere:",
      "      labels: [h11-no-runner]",
      "steps:",
      "  - name: s",
      "    targets: [nowhere]",
      "    action: shell.run",
      "    args:",
      "      script: echo",
      "",
    ].join("\n");
    const submitted = await api(
      server.url,
      "POST",
      "/api/runs",
      { kind: "workflow", workflow, vars: { BIG: "x".repeat(7_500_000) } },
      acmeTeammate,
    );
    expect(submitted.status, JSON.stringify(submitted.body).slice(0, 300)).toBe(400);
    expect(JSON.stringify(submitted.body)).toContain("each value may hold 131072 (128 KiB)");
    const response = await fetch(`${server.url}/api/runs`, { headers: { authorization: `Bearer ${acme}` } });
    expect((await response.text()).length).toBeLessThan(1024 * 1024);
  }, 60_000);
});

/** The thread of process `pid` running at nice 10 (the large workflows' parsing lane), if one runs. */
function niceTenThread(pid: number): number | undefined {
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    // Fields after the command's closing parenthesis: nice is the 19th field, the 17th of these.
    if (stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16] === "10") return Number(tid);
  }
  return undefined;
}

/** Clock ticks of CPU (user and system) thread `tid` of process `pid` has used. */
function threadTicks(pid: number, tid: number): number {
  const fields = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

describe("the parsing budget on a busy machine", () => {
  it("counts the parsing thread's CPU, not the time it waited for one: a large workflow whose reading is held off the CPU for longer than the budget is read", async () => {
    // A busy machine, made exact: the whole server stopped (SIGSTOP) for longer than a 5 s budget
    // while its parsing thread reads a large workflow, so the clock passes the budget while the
    // thread uses no CPU. A budget counted by the clock (as it was) refuses it; one counted in the
    // thread's CPU reads it. Its clock cap, six budgets (30 s), leaves the thread at nice 10 over
    // 24 s for the 0.1 s of CPU a 300 KB workflow takes on a slow host: a full suite on two cores
    // gives a nice-10 thread a few hundredths of a CPU (it once left a 3 s budget's 18 s cap too
    // little for 600 KB).
    const budgetMs = 5000;
    const busy = await startTestServer(tempDir(), { RUNYARD_PARSE_BUDGET_MS: String(budgetMs) });
    const pid = busy.proc.child.pid!;
    const validate = (name: string, kb: number) =>
      fetch(`${busy.url}/api/workflows/validate`, {
        method: "POST",
        headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
        body: JSON.stringify({ workflow: workflowOf(name, kb, "v") }),
      });
    try {
      // A first workflow just over the small lane's 64 KB starts the large lane's thread and loads
      // its modules.
      const warm = await validate("warm", 70);
      expect(warm.status, await warm.text()).toBe(200);
      const tid = niceTenThread(pid);
      expect(tid, "the large lane's thread, at nice 10").toBeDefined();
      const before = threadTicks(pid, tid!);
      const started = performance.now();
      const answered = validate("held", 300);
      // Its thread reading this one (two ticks of CPU past where it stood): stop the server.
      while (threadTicks(pid, tid!) < before + 2) await new Promise((resolve) => setImmediate(resolve));
      process.kill(pid, "SIGSTOP");
      const stopped = threadTicks(pid, tid!);
      await new Promise((resolve) => setTimeout(resolve, budgetMs + 500));
      process.kill(pid, "SIGCONT");
      const answer = await answered;
      const body = (await answer.json()) as { ok?: boolean; error?: { message: string } };
      expect(answer.status, JSON.stringify(body)).toBe(200);
      expect(body.ok).toBe(true);
      expect(performance.now() - started).toBeGreaterThan(budgetMs + 500);
      // The thread was still reading when it was stopped: it used CPU after it went on.
      expect(threadTicks(pid, tid!)).toBeGreaterThan(stopped);
    } finally {
      process.kill(pid, "SIGCONT");
      await busy.proc.kill();
    }
  }, 60_000);
});
