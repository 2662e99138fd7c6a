import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContainerLauncher, sandboxUser } from "../src/exec/docker/container-launcher.js";
import { DockerEngine } from "../src/exec/docker/docker-engine.js";
import { type EgressDestination, type EgressProxy, startEgressProxy } from "../src/exec/egress-proxy.js";
import type { ExecRequest } from "../src/exec/types.js";
import { busyboxImage, requireDocker } from "./helpers/docker.js";

const haveDocker = await requireDocker();
const engine = new DockerEngine();
const forwarder = join(import.meta.dirname, "../native/build/egress-forward");
const labels = { "runyard.test": "1", "runyard.test.sandbox": String(process.pid) };
let image = "";
let allowedServer: Server;
let otherServer: Server;
let allowedPort = 0;
let otherPort = 0;
let proxy: EgressProxy;
let socketFolder = "";
const refused: EgressDestination[] = [];
const root = mkdtempSync(join(tmpdir(), "runyard-sandbox-launcher-"));

function listen(host: string, answer: string): Promise<[Server, number]> {
  const server = createServer((_req, res) => res.end(answer));
  return new Promise((resolve) =>
    server.listen(0, host, () => resolve([server, (server.address() as AddressInfo).port])),
  );
}

beforeAll(async () => {
  if (!haveDocker) return;
  image = await busyboxImage();
  [allowedServer, allowedPort] = await listen("127.0.0.1", "from the model");
  // Another loopback address: what an agent must not reach (a database on the private network).
  [otherServer, otherPort] = await listen("127.0.0.2", "secret data");
  // The socket's folder: private on the host, open to the container's user, who is not the runner's.
  const parent = join(root, "egress");
  mkdirSync(parent, { mode: 0o700 });
  socketFolder = join(parent, "socket");
  mkdirSync(socketFolder);
  chmodSync(socketFolder, 0o755);
  proxy = await startEgressProxy(
    { socketPath: join(socketFolder, "egress.sock") },
    {
      allow: [{ host: "127.0.0.1", port: allowedPort }],
      refused: (destination) => refused.push(destination),
    },
  );
  chmodSync(join(socketFolder, "egress.sock"), 0o666);
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  allowedServer?.close();
  otherServer?.close();
  if (haveDocker) {
    const left = await engine.docker.listContainers({
      all: true,
      filters: { label: [`runyard.test.sandbox=${process.pid}`] },
    });
    for (const container of left) await engine.remove(container.Id);
  }
  rmSync(root, { recursive: true, force: true });
});

function launcher(egress: ConstructorParameters<typeof ContainerLauncher>[0]["egress"], cwd: string) {
  return new ContainerLauncher({
    engine,
    image,
    limits: { memoryBytes: 128 * 1024 * 1024, cpus: 1, pids: 64 },
    egress,
    labels,
    user: sandboxUser(cwd),
  });
}

/** A folder the container's user may write: under a root runner that user is nobody. */
function workFolder(): string {
  const dir = mkdtempSync(join(root, "work-"));
  chmodSync(dir, 0o777);
  return dir;
}

async function run(l: ContainerLauncher, script: string, cwd: string, extra: Partial<ExecRequest> = {}) {
  let stdout = "";
  let stderr = "";
  const result = await l.run({
    argv: ["sh", "-c", script],
    env: { PATH: "/bin", SECRET_TOKEN: "s3cr3t" },
    cwd,
    killGraceMs: 500,
    onOutput: (stream, data) => {
      if (stream === "stdout") stdout += data;
      else stderr += data;
    },
    ...extra,
  });
  return { result, stdout, stderr };
}

describe.skipIf(!haveDocker)("a sandboxed agent's container", () => {
  it("reaches the allowed destination through the egress proxy, and nothing else", async () => {
    const cwd = workFolder();
    const l = launcher({ kind: "proxy", forwarder, socketFolder, socketName: "egress.sock" }, cwd);
    const { result, stdout, stderr } = await run(
      l,
      [
        `wget -q -O - http://127.0.0.1:${allowedPort}/chat; echo " allowed=$?"`,
        `wget -q -O - http://127.0.0.2:${otherPort}/db; echo " other=$?"`,
        // Around the proxy: the container has no network but its own loopback.
        `wget -q -Y off -T 3 -O - http://127.0.0.2:${otherPort}/db; echo " direct=$?"`,
        'echo "home=$HOME user=$(id -u) secret=$SECRET_TOKEN" > out.txt',
      ].join("; "),
      cwd,
    );
    expect(result.status, stderr).toBe("success");
    expect(stdout).toContain("from the model allowed=0");
    expect(stdout).not.toContain("secret data");
    expect(stdout).toMatch(/other=[1-9]/);
    expect(stdout).toMatch(/direct=[1-9]/);
    expect(refused).toContainEqual({ host: "127.0.0.2", port: otherPort });
    // The cwd is the host's folder, written in place; the env reached the command; never root.
    const written = readFileSync(join(cwd, "out.txt"), "utf8");
    expect(written).toContain("secret=s3cr3t");
    expect(written).toContain("home=/home/runyard");
    expect(written).not.toContain("user=0 ");
  }, 60_000);

  it("has no network at all with egress none", async () => {
    const cwd = workFolder();
    const { stdout } = await run(
      launcher({ kind: "none" }, cwd),
      `wget -q -T 3 -O - http://127.0.0.1:${allowedPort}/chat; echo " rc=$?"`,
      cwd,
    );
    expect(stdout).not.toContain("from the model");
    expect(stdout).toMatch(/rc=[1-9]/);
  }, 60_000);

  it("sees only what it is given: a read-only root, the runner's files absent", async () => {
    const cwd = workFolder();
    const readable = mkdtempSync(join(root, "cli-"));
    chmodSync(readable, 0o755);
    writeFileSync(join(readable, "tool"), "the agent's CLI");
    const { stdout } = await run(
      launcher({ kind: "none" }, cwd),
      [
        `cat ${readable}/tool; echo " read=$?"`,
        `echo x > ${readable}/tool; echo " write-readable=$?"`,
        `echo x > /etc/passwd 2>/dev/null; echo " write-root=$?"`,
        `ls ${root}/egress >/dev/null 2>&1; echo " egress-folder=$?"`,
      ].join("; "),
      cwd,
      { exposure: { readable: [readable] } },
    );
    expect(stdout).toContain("the agent's CLI read=0");
    expect(stdout).toMatch(/write-readable=[1-9]/);
    expect(stdout).toMatch(/write-root=[1-9]/);
    expect(stdout).toMatch(/egress-folder=[1-9]/);
    expect(readFileSync(join(readable, "tool"), "utf8")).toBe("the agent's CLI");
  }, 60_000);

  it("is stopped and removed on cancel, and on timeout", async () => {
    const cwd = workFolder();
    const l = launcher({ kind: "none" }, cwd);
    const controller = new AbortController();
    const canceled = run(l, `touch started; sleep 60`, cwd, { signal: controller.signal });
    // The container is running once its first command has left a mark in the mounted folder.
    while (!existsSync(join(cwd, "started"))) await new Promise((resolve) => setImmediate(resolve));
    controller.abort();
    expect((await canceled).result.status).toBe("canceled");
    const timedOut = await run(l, "sleep 60", cwd, { timeoutMs: 1500 });
    expect(timedOut.result.status).toBe("timeout");
    const left = await engine.docker.listContainers({
      all: true,
      filters: { label: [`runyard.test.sandbox=${process.pid}`] },
    });
    expect(left).toEqual([]);
    expect(statSync(cwd).isDirectory()).toBe(true);
  }, 90_000);
});
