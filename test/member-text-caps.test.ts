import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../src/server/server.js";
import { injectJson, signedInMember, startInProcessServer, tenantRunnerKnown } from "./helpers/in-process.js";

/*
 * Every string a member sends that the server stores has a cap, checked before it is parsed or
 * stored and named in the refusal with a hint; lists stay small whatever members send. Real
 * server, real SQLite, each test in its own tenant.
 */

let server: RunningServer;

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field, as a client would
type Json = any;

async function call(token: string, method: string, url: string, body?: unknown) {
  const answer: { status: number; body: Json } = await injectJson(server.app, method, url, { token, body });
  return { ...answer, text: JSON.stringify(answer.body ?? null) };
}

/** A member of a tenant of their own, whose tenant has a runner its workflows queue on. */
async function member(tenant: string): Promise<string> {
  const token = await signedInMember(server, `${tenant}-member`, tenant);
  await tenantRunnerKnown(server, tenant);
  return token;
}

const long = "n".repeat(600 * 1024);

const workflowNamed = (name: string, stepName = "hi", description = "says hi") =>
  `name: ${name}\ndescription: ${description}\nsteps:\n  - name: ${stepName}\n    action: cmd.run\n    args:\n      cmd: echo hi\n`;

beforeAll(async () => {
  server = await startInProcessServer();
});

afterAll(async () => {
  await server?.close();
});

describe("caps on what members send", () => {
  it("refuses a 600 KB run name with 400 naming the field and its cap, and stores nothing", async () => {
    const token = await member("run-names");
    const refused = await call(token, "POST", "/api/runs", { workflow: workflowNamed(long) });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain("name is 614400 characters long; it may have at most 200");
    expect(refused.text.length).toBeLessThan(4096);
    const list = await call(token, "GET", "/api/runs");
    expect(list.body.runs).toEqual([]);
  });

  it("refuses a 600 KB step name and a long description, naming each and quoting only their start", async () => {
    const token = await member("step-names");
    const step = await call(token, "POST", "/api/runs", { workflow: workflowNamed("ok", long) });
    expect(step.status).toBe(400);
    expect(step.text).toContain("name of step #1 is 614400 characters long; it may have at most 200");
    expect(step.body.error.details).toHaveLength(1);
    expect(step.text.length).toBeLessThan(4096);
    const description = await call(token, "POST", "/api/runs", {
      workflow: workflowNamed("ok", "hi", "d".repeat(5000)),
    });
    expect(description.status).toBe(400);
    expect(description.text).toContain("description is 5000 characters long; it may have at most 4000");
  });

  it("keeps a list of runs small: names at their cap are taken, and a list of them is a few KB", async () => {
    const token = await member("run-lists");
    for (let i = 0; i < 5; i++) {
      const taken = await call(token, "POST", "/api/runs", {
        workflow: workflowNamed(`${i}${"x".repeat(199)}`, "s".repeat(200), "d".repeat(4000)),
      });
      expect(taken.status).toBe(201);
    }
    const list = await call(token, "GET", "/api/runs");
    expect(list.body.runs).toHaveLength(5);
    expect(list.text.length).toBeLessThan(20_000);
  });

  it("refuses an agent task's long title, prompt and labels by field and cap", async () => {
    const token = await member("agent-texts");
    const title = await call(token, "POST", "/api/runs", { kind: "agent", title: long, prompt: "fix it" });
    expect(title.status).toBe(400);
    expect(title.text).toContain("title");
    expect(title.text).toContain("200");
    const prompt = await call(token, "POST", "/api/runs", { kind: "agent", prompt: "p".repeat(300 * 1024) });
    expect(prompt.status).toBe(400);
    expect(prompt.text).toContain("prompt");
    expect(prompt.text).toContain("262144");
    const labels = await call(token, "POST", "/api/runs", {
      kind: "agent",
      prompt: "fix it",
      labels: [long],
    });
    expect(labels.status).toBe(400);
    expect(labels.text).toContain("labels");
    const list = await call(token, "GET", "/api/runs");
    expect(list.body.runs).toEqual([]);
  });

  it("refuses a bot's long env value and a follow-up's long text by field and cap", async () => {
    const token = await member("bot-texts");
    const bot = await call(token, "POST", "/api/bots", {
      name: "echo",
      image: "ghcr.io/acme/echo:v1",
      env: { NOTE: long },
    });
    expect(bot.status).toBe(400);
    expect(bot.text).toContain("env");
    expect(bot.text).toContain("131072");
    const chat = await call(token, "POST", "/api/chat", { message: long });
    expect(chat.status).toBe(400);
    expect(chat.text).toContain("message");
  });

  it("refuses a workflow's own 600 KB variable as the API's vars are refused, naming it and the cap", async () => {
    const token = await member("yaml-vars");
    const refused = await call(token, "POST", "/api/runs", {
      workflow: `name: big-vars\nvars:\n  NOTE: ${"v".repeat(600 * 1024)}\nsteps:\n  - name: hi\n    action: cmd.run\n    args:\n      cmd: echo hi\n`,
    });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain("vars.NOTE is 614400 bytes; a value may hold at most 131072 (128 KiB)");
    expect(refused.text.length).toBeLessThan(4096);
    expect((await call(token, "GET", "/api/runs")).body.runs).toEqual([]);
  });

  it("measures a var sent as an array or number by the text it becomes, so no shape passes the 128 KiB cap", async () => {
    const token = await member("shaped-vars");
    // 40,000 items of four characters: within the body's 50,000 values, and 200 KB of text once
    // joined by the commas the coercion puts between them.
    const items = Array.from({ length: 40_000 }, () => "vvvv");
    const refused = await call(token, "POST", "/api/runs", {
      workflow: workflowNamed("shaped"),
      vars: { NOTE: items },
    });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain(
      'vars: the value of \\"NOTE\\" is 199999 bytes; each value may hold 131072',
    );
    expect((await call(token, "GET", "/api/runs")).body.runs).toEqual([]);
  });

  it("refuses a host's 20000 labels and an approval's long message, naming each and its cap", async () => {
    const token = await member("host-labels");
    const labels = Array.from({ length: 20_000 }, (_, i) => `l${i}`).join(", ");
    const many = await call(token, "POST", "/api/runs", {
      workflow: `name: labelled\ninventory:\n  hosts:\n    w:\n      labels: [${labels}]\nsteps:\n  - name: hi\n    targets: [w]\n    action: cmd.run\n    args:\n      cmd: echo hi\n`,
    });
    expect(many.status).toBe(400);
    expect(many.text).toContain('labels of host \\"w\\" has 20000 names; it may have at most 64');
    expect(many.text.length).toBeLessThan(4096);
    const message = await call(token, "POST", "/api/runs", {
      workflow: `name: gate\nsteps:\n  - name: ok\n    action: approval\n    args:\n      message: ${"m".repeat(300 * 1024)}\n      approvers: [role:admin]\n`,
    });
    expect(message.status).toBe(400);
    expect(message.text).toContain(
      'message of step \\"ok\\" is 307200 characters long; it may have at most 4000',
    );
    expect(message.text.length).toBeLessThan(4096);
    expect((await call(token, "GET", "/api/runs")).body.runs).toEqual([]);
  });

  it("keeps an approval's message small however large the variables it names", async () => {
    const token = await member("gate-vars");
    const big = "v".repeat(100 * 1024);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the workflow's own ${BIG}, filled in by runyard
    const named = "${BIG}".repeat(50);
    const started = await call(token, "POST", "/api/runs", {
      workflow: `name: gate\nsteps:\n  - name: ok\n    action: approval\n    args:\n      message: "${named}"\n      approvers: [role:admin]\n`,
      vars: { BIG: big },
    });
    expect(started.status, started.text).toBe(201);
    // Followed before the run is read, so its step.waiting is seen whether it came before or after.
    const runId: string = started.body.run_id;
    let stopFollowing = () => {};
    const waiting = new Promise<void>((resolve) => {
      stopFollowing = server.bus.subscribe(runId, (event) => {
        if (event.type === "step.waiting" || event.type === "run.finished") resolve();
      });
    });
    let run: Json = (await call(token, "GET", `/api/runs/${runId}`)).body;
    if (!(run.approvals?.length > 0)) {
      await waiting;
      run = (await call(token, "GET", `/api/runs/${runId}`)).body;
    }
    stopFollowing();
    const asked: string = run.approvals[0].message;
    expect(asked.length).toBeLessThanOrEqual(16 * 1024);
    expect(asked).toContain("more characters of the message were left out");
  });

  it("refuses a hook's 600 KB name by its cap, quoting only its start", async () => {
    const token = await member("hook-texts");
    const named = await call(token, "POST", "/api/hooks", { name: long, workflow: "deploy" });
    expect(named.status).toBe(400);
    expect(named.text).toContain("at most 100 long");
    expect(named.text.length).toBeLessThan(4096);
    expect((await call(token, "GET", "/api/hooks")).body.hooks).toEqual([]);
  });
});
