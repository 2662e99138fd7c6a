import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { machineAddresses } from "../src/exec/egress-proxy.js";
import { nativeHelperPath } from "../src/exec/native-helpers.js";
import { probeSandbox, Sandbox } from "../src/exec/sandbox/sandbox.js";
import { RunnerEgress } from "../src/exec/sandbox/sandbox-network.js";
import { attachPlainTcp, detachPlainTcp, sweepPlainTcp } from "../src/exec/sandbox/sandbox-tcp.js";
import { plainTcpRules } from "../src/exec/sandbox/sandbox-tcp-rules.js";
import type { SandboxNetwork } from "../src/exec/types.js";
import { tempDir } from "./helpers/cli.js";
import { type NetnsHost, startNetnsHost } from "./helpers/netns-host.js";
import { until } from "./helpers/processes.js";

/**
 * Plain TCP for a sandbox with a network of its own (exec/sandbox/sandbox-tcp.ts): pasta attached to a
 * held bwrap's namespace, nftables rules set there first. A network namespace of the test's own
 * (a veth pair on a 10.x /30 of its making) stands in for the runner's private network. Needs root
 * (`ip netns`), bwrap, pasta and nft.
 */
const available = (command: string, args: string[]) => {
  try {
    execFileSync(command, args, { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};
const canRun =
  process.getuid?.() === 0 &&
  available("pasta", ["--version"]) &&
  available("nft", ["--version"]) &&
  existsSync(nativeHelperPath("egress-forward"));
// CI installs what these need (.ci/run): there they run, never skip.
if (!canRun && process.env.CI === "true")
  throw new Error(
    "these tests need root, pasta (passt), nft (nftables) and native/build/egress-forward: .ci/run installs them",
  );

const suffix = String(process.pid % 100_000);
const namespace = `ryh4-${suffix}`;
const hostSide = `ryh4h${suffix}`;
const nsSide = `ryh4n${suffix}`;
const subnet = `10.${150 + (process.pid % 50)}.${Math.floor(process.pid / 50) % 250}`;
const privateAddress = `${subnet}.2`;
let privateHost: NetnsHost | undefined;
let loopback: Server | undefined;
let loopbackPort = 0;
let loopbackReached = 0;
let egress: RunnerEgress | undefined;
let network: SandboxNetwork;
let sandbox: Sandbox;

beforeAll(async () => {
  if (!canRun) return;
  privateHost = await startNetnsHost({
    name: namespace,
    hostSide,
    nsSide,
    hostAddress: `${subnet}.1`,
    address: privateAddress,
    port: 8080,
  });
  loopback = createServer((socket) => {
    loopbackReached++;
    socket.on("error", () => {});
    socket.end("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n");
  });
  await new Promise<void>((resolve) => loopback?.listen(0, "127.0.0.1", resolve));
  const address = loopback.address();
  loopbackPort = typeof address === "object" && address ? address.port : 0;
  const probe = await probeSandbox();
  if (probe.isolation !== "sandbox") throw new Error(probe.problem);
  sandbox = new Sandbox({ bwrap: probe.bwrap, hide: [] });
  egress = await RunnerEgress.start({
    forwarder: nativeHelperPath("egress-forward"),
    allow: {},
    refused: () => {},
  });
  network = await egress.networkFor("acme");
}, 60_000);

afterAll(async () => {
  loopback?.close();
  await egress?.close();
  privateHost?.remove();
});

/**
 * A sandbox whose command says it is ready, then waits for a line on its stdin: pasta attaches to
 * a namespace bwrap has finished, as a run's sandbox is ready (its holder said so) before pasta
 * comes. Attached as soon as bwrap named its child, pasta raced bwrap's own set-up of the
 * loopback: pasta brings `lo` up, the kernel gives it 127.0.0.1, and bwrap's adding of that
 * address then fails ("bwrap: loopback: Failed RTM_NEWADDR", seen once in a full run).
 */
async function readySandbox(
  script: string,
): Promise<{ child: ChildProcess; pid: number; go: () => void; output: () => string }> {
  const command = ["bash", "-c", `echo sandbox-ready; read -r _ || exit 9\n${script}`];
  const [bwrap, ...args] = sandbox.command(command, { cwd: tempDir(), network });
  const child = spawn(bwrap!, ["--info-fd", "3", ...args], { stdio: ["pipe", "pipe", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  // bwrap closes it once it has said its child's pid: a reset there is no failure.
  const info = child.stdio[3] as Readable;
  info.on("error", () => {});
  child.stdin!.on("error", () => {});
  let text = "";
  const pid = await new Promise<number>((resolve, reject) => {
    const check = () => {
      const match = /"child-pid":\s*(\d+)/.exec(text);
      if (match && output.startsWith("sandbox-ready\n")) resolve(Number(match[1]));
    };
    info.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      check();
    });
    child.stdout!.on("data", check);
    child.on("exit", () => reject(new Error(`the sandbox ended before it was ready: ${output}`)));
  });
  return {
    child,
    pid,
    go: () => child.stdin!.end("go\n"),
    output: () => output.slice("sandbox-ready\n".length),
  };
}

/**
 * Runs `script` in a sandbox with a network of its own, held until pasta is attached with
 * `rules`; answers its output.
 */
async function sandboxed(script: string, rules: string): Promise<string> {
  const { child, pid, go, output } = await readySandbox(script);
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const pasta = await attachPlainTcp(pid, rules);
  go();
  await exited;
  detachPlainTcp(pasta);
  return output();
}

const tries = () =>
  [
    `code=$(curl -s -m 5 --noproxy '*' -o /dev/null -w '%{http_code}' http://${privateAddress}:8080/); echo "private-$code"`,
    `(exec 3<>/dev/tcp/127.0.0.1/${loopbackPort}) 2>/dev/null && echo loopback-reached || echo loopback-refused`,
    `code=$(curl -s -m 5 --noproxy '*' -o /dev/null -w '%{http_code}' http://169.254.169.254/); echo "metadata-$code"`,
    'echo "links-$(ip -brief link | wc -l)"',
  ].join("\n");

describe.skipIf(!canRun)("plain TCP from a sandbox through pasta", () => {
  it("is refused at a private address, the metadata address and the host's loopback when no rule lets them in", async () => {
    const before = loopbackReached;
    const output = await sandboxed(tries(), plainTcpRules([], machineAddresses()));
    expect(output).toContain("private-000\n");
    expect(output).toContain("metadata-000\n");
    expect(output).toContain("loopback-refused\n");
    // pasta gave it an interface besides its loopback: the refusals are the rules'.
    expect(output).toContain("links-2\n");
    expect(loopbackReached).toBe(before);
  });

  it("reaches the private range the operator allows, and still not the host's loopback", async () => {
    const output = await sandboxed(tries(), plainTcpRules([`${subnet}.0/30:8080`], machineAddresses()));
    expect(output).toContain("private-200\n");
    expect(output).toContain("loopback-refused\n");
  });

  it("keeps the proxy on its own loopback beside pasta's interface", async () => {
    const output = await sandboxed(
      `curl -s -m 5 -o /dev/null -w 'proxied-%{http_code}\\n' http://${privateAddress}:8080/`,
      plainTcpRules([], machineAddresses()),
    );
    // The proxy refuses it (acme is allowed nothing internal), saying so with a 403.
    expect(output).toContain("proxied-403\n");
  });

  it("leaves a pasta whose namespace is gone to the next runner's sweep, which ends it", async () => {
    const { child: holder, pid: inside } = await readySandbox("exec sleep 60");
    const pasta = await attachPlainTcp(inside, plainTcpRules([], machineAddresses()));
    expect(existsSync(`/proc/${pasta}`)).toBe(true);
    // Nothing ends it with its namespace (a runner killed -9 with its sandboxes)...
    process.kill(inside, "SIGKILL");
    holder.kill("SIGKILL");
    await until("the sandbox is gone", () => !existsSync(`/proc/${inside}`));
    expect(existsSync(`/proc/${pasta}`)).toBe(true);
    // ...but the sweep does, and leaves alone a pasta whose namespace is still there.
    expect(sweepPlainTcp()).toBeGreaterThanOrEqual(1);
    await until("the pasta has ended", () => !existsSync(`/proc/${pasta}`) || zombie(pasta));
  });
});

function zombie(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return true;
  }
}
