import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import { type NetnsHost, startNetnsHost } from "./helpers/netns-host.js";
import { commandWorks, until } from "./helpers/processes.js";
import { waitForOutput } from "./helpers/run-output-wait.js";
import {
  adminToken,
  api,
  isFinal,
  type Proc,
  readEvents,
  startCli,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/**
 * What a step reaches on a shared, sandboxing runner (docs/security.md, "A tenant's network"):
 * real bubblewrap, the runner's real egress proxy, and a network namespace of the test's own
 * (`ip netns`, a veth pair on a 10.x /30 of the test's making) standing in for the runner's
 * private network. Needs root (for `ip netns`) and a bwrap that works.
 */
const canRun = process.getuid?.() === 0 && commandWorks("bwrap", ["--ro-bind", "/", "/", "true"]);
// CI installs what these need (.ci/run): there they run, never skip.
if (!canRun && process.env.CI === "true")
  throw new Error(
    "these tests need root, ip (iproute2), bwrap and native/build/egress-forward: .ci/run installs them",
  );

function commandOutput(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: "utf8" });
  } catch {
    return "";
  }
}

const suffix = String(process.pid % 100_000);
const namespace = `ryh3-${suffix}`;
const hostSide = `ryh3h${suffix}`;
const nsSide = `ryh3n${suffix}`;
// A /30 of the test's own in 10.0.0.0/8, one per test process.
const subnet = `10.${200 + (process.pid % 50)}.${Math.floor(process.pid / 50) % 250}`;
const privateAddress = `${subnet}.2`;
const privatePort = 8080;
// A "public" host of the test's own: a /30 of 203.0.113.0/24 (documentation addresses, never
// routed beyond this machine) behind a second veth pair, which the rules treat as public.
const publicNamespace = `ryh3p-${suffix}`;
const publicHostSide = `ryh3q${suffix}`;
const publicNsSide = `ryh3r${suffix}`;
const publicBase = 4 * (process.pid % 60);
const publicAddress = `203.0.113.${publicBase + 2}`;

let server: TestServer;
let runner: Proc | undefined;
let privateHost: NetnsHost | undefined;
let publicHost: NetnsHost | undefined;
let abstractService: ChildProcess | undefined;
const hostListeners: Server[] = [];
let loopbackPort = 0;
let loopbackReached = 0;
let abstractReached = 0;
const abstractName = `runyard-h3-test-${suffix}`;
let acme = "";
let globex = "";

async function token(body: Record<string, string>): Promise<string> {
  const { status, body: created } = await api<{ token: string }>(server.url, "POST", "/api/tokens", body);
  expect(status).toBe(201);
  return created.token;
}

beforeAll(async () => {
  if (!canRun) return;
  // The runner's "private network": a namespace behind a veth pair, an HTTP service inside.
  privateHost = await startNetnsHost({
    name: namespace,
    hostSide,
    nsSide,
    hostAddress: `${subnet}.1`,
    address: privateAddress,
    port: privatePort,
  });
  publicHost = await startNetnsHost({
    name: publicNamespace,
    hostSide: publicHostSide,
    nsSide: publicNsSide,
    hostAddress: `203.0.113.${publicBase + 1}`,
    address: publicAddress,
    port: 8080,
  });

  // The host's loopback services a step must not reach: a TCP listener and an abstract socket.
  const loopback = createServer((socket) => {
    loopbackReached++;
    // A shell that connects and goes may reset the connection before this is read.
    socket.on("error", () => {});
    socket.end("HTTP/1.0 200 OK\r\ncontent-length: 9\r\n\r\nloopback\n");
  });
  hostListeners.push(loopback);
  await new Promise<void>((resolve) => loopback.listen(0, "127.0.0.1", resolve));
  const address = loopback.address();
  loopbackPort = typeof address === "object" && address ? address.port : 0;
  // Python's: Node binds an abstract name padded with NULs to the whole sun_path.
  const abstractScript = [
    "import socket",
    "s = socket.socket(socket.AF_UNIX)",
    `s.bind("\\0${abstractName}")`,
    "s.listen(8)",
    'print("ready", flush=True)',
    "while True:",
    "    c, _ = s.accept()",
    '    print("hit", flush=True)',
    '    c.sendall(b"abstract\\n")',
    "    c.close()",
  ].join("\n");
  abstractService = spawn("python3", ["-u", "-c", abstractScript], { stdio: ["ignore", "pipe", "inherit"] });
  let abstractOutput = "";
  abstractService.stdout?.on("data", (chunk: Buffer) => {
    abstractOutput += chunk.toString();
    abstractReached = abstractOutput.split("hit").length - 1;
  });
  await until("the abstract socket listens", () => abstractOutput.includes("ready"), 10_000);

  server = await startTestServer();
  acme = await token({ kind: "user", name: "acme-member", tenant_id: "acme" });
  globex = await token({ kind: "user", name: "globex-member", tenant_id: "globex" });
  const runnerToken = await token({ kind: "runner", name: "shared runner" });
  const config = join(tempDir(), "runner.yaml");
  writeFileSync(config, `step_network_allow:\n  acme:\n    - ${subnet}.0/30\n`);
  runner = startCli(
    [
      "runner",
      "--server",
      server.url,
      "--token",
      runnerToken,
      "--id",
      "shared-h3",
      "--shared",
      "--config",
      config,
    ],
    { RUNYARD_SANDBOX: "auto", RUNYARD_LOG_LEVEL: "error", RUNYARD_HOME: tempDir() },
    tempDir("runyard-work-"),
  );
  await runner.waitFor("runner shared-h3 connected");
  // Two namespaces, a server and a runner process: a minute was not enough beside a loaded suite.
}, 120_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
  abstractService?.kill("SIGKILL");
  for (const listener of hostListeners) listener.close();
  privateHost?.remove();
  publicHost?.remove();
});

/** Submits `script` as one shell.run step with `bearer`; answers the run's id. */
async function submitStep(bearer: string, script: string): Promise<string> {
  const workflow = [
    "version: v0.1",
    "name: network",
    "inventory:",
    "  hosts:",
    "    worker: {}",
    "steps:",
    "  - name: reach",
    "    targets: [worker]",
    "    action: shell.run",
    "    args:",
    "      script: |",
    ...script.split("\n").map((line) => `        ${line}`),
  ].join("\n");
  const { status, body } = await api<{ run_id: string }>(
    server.url,
    "POST",
    "/api/runs",
    { kind: "workflow", workflow: `${workflow}\n` },
    bearer,
  );
  expect(status, JSON.stringify(body)).toBe(201);
  return body.run_id;
}

/** The status and output of a run once it has ended. */
async function ended(runId: string): Promise<{ status: string; output: string }> {
  const run = await waitForRun(server.url, runId, isFinal, 60_000);
  const events = await readEvents(server.url, runId);
  const output = events.flatMap((event) => (event.type === "step.output" ? [event.data] : [])).join("");
  return { status: run.status, output };
}

/** Runs `script` as one shell.run step submitted with `bearer`; answers the run's status and output. */
async function stepOf(bearer: string, script: string): Promise<{ status: string; output: string }> {
  return ended(await submitStep(bearer, script));
}

/** Shell lines that print `<name>-reached` or `<name>-refused` for a TCP connect and an HTTP GET. */
const tries = (port: number) =>
  [
    `(exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null && echo tcp-reached || echo tcp-refused`,
    `python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.connect('\\0${abstractName}'); print(s.recv(99))" 2>/dev/null && echo abstract-reached || echo abstract-refused`,
    `curl -sf -m 5 http://127.0.0.1:${port}/ >/dev/null 2>&1 && echo curl-loopback-reached || echo curl-loopback-refused`,
    `code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' http://${privateAddress}:${privatePort}/); echo "private-http-$code"`,
    `curl -s -m 5 http://${privateAddress}:${privatePort}/ | head -c 300; echo`,
    "echo done",
  ].join("\n");

describe.skipIf(!canRun)("a step's network on a shared runner", () => {
  it("a tenant's step reaches neither a TCP listener on the host's 127.0.0.1 nor its abstract unix socket, directly or through the proxy", async () => {
    const before = { loopback: loopbackReached, abstract: abstractReached };
    const { status, output } = await stepOf(globex, tries(loopbackPort));
    expect(status, output).toBe("success");
    expect(output).toContain("tcp-refused\n");
    expect(output).toContain("abstract-refused\n");
    expect(output).toContain("curl-loopback-refused\n");
    expect(loopbackReached).toBe(before.loopback);
    expect(abstractReached).toBe(before.abstract);
  });

  it("a tenant's curl through the proxy to a private address is refused, saying why, when the operator has not allowed it", async () => {
    const { status, output } = await stepOf(globex, tries(loopbackPort));
    expect(status, output).toBe("success");
    expect(output).toContain("private-http-403\n");
    expect(output).toContain(
      `egress to ${privateAddress}:${privatePort} is not allowed from this sandbox (${privateAddress} leads to ${privateAddress}, an internal address (private))`,
    );
  });

  it("a tenant's curl reaches the private address its operator allows for that tenant (step_network_allow), and HTTPS_PROXY names the proxy", async () => {
    // The run's sandbox (its holder is there), not one of the command's own.
    const where = `cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -q 'runyard-sandbox-holder' && echo in-run-sandbox`;
    const { status, output } = await stepOf(
      acme,
      `echo "proxy=$HTTPS_PROXY"\n${where}\n${tries(loopbackPort)}`,
    );
    expect(status, output).toBe("success");
    expect(output).toContain("proxy=http://127.0.0.1:3128\n");
    expect(output).toContain("in-run-sandbox\n");
    expect(output).toContain("private-http-200\n");
    expect(output).toContain("Directory listing");
    // The allowance is for that range: the host's loopback stays shut to the same tenant.
    expect(output).toContain("tcp-refused\n");
    expect(output).toContain("curl-loopback-refused\n");
  });

  it("a platform admin's step keeps the host's network: it reaches the loopback listener and the abstract socket", async () => {
    const before = loopbackReached;
    const { status, output } = await stepOf(adminToken, tries(loopbackPort));
    expect(status, output).toBe("success");
    expect(output).toContain("tcp-reached\n");
    expect(output).toContain("abstract-reached\n");
    expect(output).toContain("curl-loopback-reached\n");
    expect(loopbackReached).toBeGreaterThan(before);
  });

  it("a tenant's plain TCP (no proxy) reaches a public address, and neither a private one nor the host's loopback", async () => {
    const before = loopbackReached;
    const direct = (name: string, address: string, port: number) =>
      `(exec 3<>/dev/tcp/${address}/${port}) 2>/dev/null && echo ${name}-tcp-reached || echo ${name}-tcp-refused`;
    const { status, output } = await stepOf(
      globex,
      [
        direct("public", publicAddress, 8080),
        `code=$(curl -s -m 5 --noproxy '*' -o /dev/null -w '%{http_code}' http://${publicAddress}:8080/); echo "public-direct-$code"`,
        direct("private", privateAddress, privatePort),
        direct("loopback", "127.0.0.1", loopbackPort),
        direct("metadata", "169.254.169.254", 80),
      ].join("\n"),
    );
    expect(status, output).toBe("success");
    expect(output).toContain("public-tcp-reached\n");
    expect(output).toContain("public-direct-200\n");
    expect(output).toContain("private-tcp-refused\n");
    expect(output).toContain("loopback-tcp-refused\n");
    expect(output).toContain("metadata-tcp-refused\n");
    expect(loopbackReached).toBe(before);
  });

  it("a tenant's plain TCP reaches the private range its operator allows for that tenant, and no other tenant's", async () => {
    const script = `code=$(curl -s -m 5 --noproxy '*' -o /dev/null -w '%{http_code}' http://${privateAddress}:${privatePort}/); echo "private-direct-$code"`;
    const allowed = await stepOf(acme, script);
    expect(allowed.status, allowed.output).toBe("success");
    expect(allowed.output).toContain("private-direct-200\n");
    const other = await stepOf(globex, script);
    expect(other.output).toContain("private-direct-000\n");
  });

  it("leaves no pasta behind once the run's sandbox has ended", async () => {
    // pasta's process is named passt (or passt.avx2): found by its arguments.
    const pastas = () =>
      commandOutput("pgrep", ["-a", "-f", "^pasta .*--netns /proc/"])
        .split("\n")
        .filter((line) => line.includes("runyard-pasta-"));
    const runId = await submitStep(
      globex,
      [
        'echo "folder=$(pwd)"',
        `(exec 3<>/dev/tcp/${publicAddress}/8080) && echo reached`,
        "while [ ! -e release ]; do sleep 0.05; done",
      ].join("\n"),
    );
    // The run's sandbox (and its pasta) is up once its step prints: pasta is looked for then, once,
    // rather than by a pgrep every 20 ms, and the step ends once it has been seen.
    const said = await waitForOutput(server.url, runId, "reached\n", 20_000);
    const ours = pastas().map((line) => line.split(" ")[0] ?? "");
    const folder = /^folder=(.*)$/m.exec(said)?.[1];
    if (folder) writeFileSync(join(folder, "release"), "");
    expect(ours.length, "the run's sandbox has its pasta").toBeGreaterThan(0);
    expect((await ended(runId)).status).toBe("success");
    // The run's sandbox ends 5 s after its last command; its pasta goes with its namespace (gone
    // from /proc, or a zombie, whose command line is empty).
    const running = (pid: string) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "latin1").startsWith("pasta");
      } catch {
        return false;
      }
    };
    await until("no pasta outlives its run's sandbox", () => !ours.some(running), 30_000);
  }, 60_000);
});
