import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import { commandWorks, until } from "./helpers/processes.js";
import { waitForOutput } from "./helpers/run-output-wait.js";
import {
  api,
  createToken,
  freePort,
  isFinal,
  type Proc,
  readEvents,
  startCli,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/**
 * A member's step on a shared, sandboxing runner that gives it plain TCP (pasta and nftables),
 * attacking what the sandbox's network lets through: the host's services, its rules, its pasta.
 */
const canRun = process.getuid?.() === 0 && commandWorks("bwrap", ["--ro-bind", "/", "/", "true"]);
// CI installs what these need (.ci/run) and runs as root: there they run, never skip.
if (!canRun && process.env.CI === "true")
  throw new Error("these tests need root and a bwrap that works: .ci/run installs bubblewrap");

let server: TestServer;
let runner: Proc | undefined;
const hostListeners: Server[] = [];
let hostPort = 0;
let hostReached = 0;
let globex = "";

beforeAll(async () => {
  if (!canRun) return;
  // A service of the host listening on every address, v4 and v6: whatever reaches the host's own
  // stack from a sandbox counts here.
  for (const host of ["::"]) {
    const listener = createServer((socket) => {
      hostReached++;
      socket.on("error", () => {});
      socket.end("host\n");
    });
    hostListeners.push(listener);
    await new Promise<void>((resolve) => listener.listen(0, host, resolve));
    const address = listener.address();
    hostPort = typeof address === "object" && address ? address.port : 0;
  }
  server = await startTestServer();
  globex = await createToken(server.url, { kind: "user", name: "globex-member", tenant_id: "globex" });
  const runnerToken = await createToken(server.url, { kind: "runner", name: "shared runner" });
  const config = join(tempDir(), "runner.yaml");
  writeFileSync(config, "step_network_allow:\n  acme:\n    - 10.77.0.0/30\n");
  runner = startCli(
    [
      "runner",
      "--server",
      server.url,
      "--token",
      runnerToken,
      "--id",
      "shared-h11",
      "--shared",
      "--config",
      config,
    ],
    { RUNYARD_SANDBOX: "auto", RUNYARD_LOG_LEVEL: "error", RUNYARD_HOME: tempDir() },
    tempDir("runyard-work-"),
  );
  await runner.waitFor("runner shared-h11 connected");
}, 60_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
  for (const listener of hostListeners) listener.close();
});

/** Submits `script` as one shell.run step with `bearer`; answers the run's id. */
async function submitStep(bearer: string, script: string): Promise<string> {
  const workflow = [
    "version: v0.1",
    "name: attack",
    "inventory:",
    "  hosts:",
    "    worker: {}",
    "steps:",
    "  - name: attack",
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
  const run = await waitForRun(server.url, runId, isFinal, 90_000).catch(() => ({
    status: "timed out",
  }));
  const events = await readEvents(server.url, runId);
  const output = events.flatMap((event) => (event.type === "step.output" ? [event.data] : [])).join("");
  return { status: run.status, output };
}

async function stepOf(bearer: string, script: string): Promise<{ status: string; output: string }> {
  return ended(await submitStep(bearer, script));
}

describe.skipIf(!canRun)("a tenant's step against its sandbox's plain TCP", () => {
  it("has no capability, cannot read nor flush its namespace's nftables rules, nor open a raw or packet socket, nor make a user namespace", async () => {
    const { status, output } = await stepOf(
      globex,
      [
        "grep -E '^Cap(Eff|Prm|Bnd|Amb)' /proc/self/status",
        "timeout 5 nft list ruleset >/dev/null 2>&1 && echo nft-list-ok || echo nft-list-refused",
        "timeout 5 nft flush ruleset >/dev/null 2>&1 && echo nft-flush-ok || echo nft-flush-refused",
        `python3 -c "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)" 2>/dev/null && echo packet-ok || echo packet-refused`,
        `python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)" 2>/dev/null && echo raw-ok || echo raw-refused`,
        "timeout 5 unshare -Urn true 2>/dev/null && echo userns-ok || echo userns-refused",
        "timeout 5 ip link add h11 type dummy 2>/dev/null && echo link-ok || echo link-refused",
      ].join("\n"),
    );
    expect(status, output).toBe("success");
    for (const cap of ["CapEff", "CapPrm", "CapBnd", "CapAmb"])
      expect(output).toMatch(new RegExp(`${cap}:\\s+0000000000000000`));
    for (const refused of ["nft-list", "nft-flush", "packet", "raw", "userns", "link"])
      expect(output).toContain(`${refused}-refused\n`);
  }, 120_000);

  it("reaches none of the host's services through any address of the host, the gateway, the resolver, link-local, or IPv6 forms that carry them", async () => {
    const before = hostReached;
    const v4 = ["127.0.0.1", "192.0.2.1", "192.0.2.2", "10.255.255.53", "169.254.169.254", "0.0.0.0"];
    const v6 = [
      "::1",
      "::ffff:127.0.0.1",
      "::ffff:192.0.2.2",
      "::127.0.0.1",
      "fd00::2",
      "fd00::1",
      "fe80::1%eth0",
      "64:ff9b::7f00:1",
      "64:ff9b:1::7f00:1",
      "2002:7f00:1::1",
      "::",
    ];
    const { status, output } = await stepOf(
      globex,
      [
        `for a in ${v4.join(" ")}; do timeout 4 bash -c "exec 3<>/dev/tcp/$a/${hostPort}" 2>/dev/null && echo "reached-$a" || echo "refused-$a"; done`,
        `for a in ${v6.join(" ")}; do python3 -c "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)" "$a" ${hostPort} 2>/dev/null && echo "reached-$a" || echo "refused-$a"; done`,
        // The resolver on its DNS port only: another port of it is refused, over TCP and UDP.
        `timeout 4 bash -c "exec 3<>/dev/tcp/10.255.255.53/80" 2>/dev/null && echo reached-resolver-80 || echo refused-resolver-80`,
        "echo done",
      ].join("\n"),
    );
    expect(status, output).toBe("success");
    expect(output).toContain("done\n");
    expect(output).not.toContain("reached-");
    expect(hostReached).toBe(before);
  }, 120_000);

  it("a listener of the step is not exposed on the host, and the step's sandbox has no cgroup file system to leave its pids limit by", async () => {
    const port = await freePort();
    // The step listens until the host has tried it: it says so, then waits for a file the test
    // writes in its folder (the run's own, shown at its host path) once it has tried, so no clock
    // stands in for either.
    const runId = await submitStep(
      globex,
      [
        'echo "folder=$(pwd)"',
        `python3 -c "import socket,os,time; s=socket.socket(); s.bind(('0.0.0.0', ${port})); s.listen(1); print('listening', flush=True); [time.sleep(0.05) for _ in iter(lambda: os.path.exists('release'), True)]" &`,
        "grep pids /proc/self/cgroup",
        "ls /sys/fs/cgroup >/dev/null 2>&1 && echo cgroupfs-seen || echo cgroupfs-absent",
        "timeout 5 mount -t cgroup2 none /tmp 2>/dev/null && echo mount-ok || echo mount-refused",
        "wait",
      ].join("\n"),
    );
    const folder = /^folder=(.*)$/m.exec(await waitForOutput(server.url, runId, "listening\n", 60_000))?.[1];
    if (!folder) throw new Error("the step did not say its folder");
    // Tried from the host while the step listens: on its loopback and its own address.
    const { connect } = await import("node:net");
    const reached: string[] = [];
    try {
      for (let round = 0; round < 3; round++) {
        for (const host of ["127.0.0.1", "192.0.2.2", "::1"]) {
          const ok = await new Promise<boolean>((resolve) => {
            const socket = connect({ host, port, timeout: 500 });
            socket.on("connect", () => {
              socket.destroy();
              resolve(true);
            });
            socket.on("error", () => resolve(false));
            socket.on("timeout", () => {
              socket.destroy();
              resolve(false);
            });
          });
          if (ok) reached.push(host);
        }
      }
    } finally {
      writeFileSync(join(folder, "release"), "");
    }
    const { status, output } = await ended(runId);
    expect(status, output).toBe("success");
    expect(output).toContain("listening\n");
    expect(reached).toEqual([]);
    expect(output).toContain("cgroupfs-absent\n");
    expect(output).toContain("mount-refused\n");
    expect(output).toMatch(/pids:\/runyard\/runner-[0-9a-f]{16}\/sandbox-|0::\/runyard/);
  }, 120_000);
});

describe.skipIf(!canRun)("a tenant's step against its sandbox's pasta", () => {
  it("a step that kills its sandbox's holder leaves no pasta behind", async () => {
    const pastas = () =>
      new Set(
        (() => {
          try {
            return execFileSync("pgrep", ["-f", "^pasta .*--netns /proc/"], { encoding: "utf8" });
          } catch {
            return "";
          }
        })()
          .split("\n")
          .filter((pid) => pid !== ""),
      );
    const before = pastas();
    // The step says it runs (its run's sandbox, and its pasta, are up by then), and waits for a
    // file the test writes in its folder once it has seen that pasta; then it kills the holder.
    const runId = await submitStep(
      globex,
      [
        'echo "folder=$(pwd)"',
        "echo ready",
        "while [ ! -e release ]; do sleep 0.05; done",
        'for p in /proc/[0-9]*; do [ "$(tr "\\0" " " < $p/cmdline)" = "/run/runyard-sandbox-holder " ] && echo killing-holder && kill -KILL "$(basename $p)"; done',
        "sleep 5",
      ].join("\n"),
    );
    const folder = /^folder=(.*)$/m.exec(await waitForOutput(server.url, runId, "ready\n", 60_000))?.[1];
    const ours = [...pastas()].filter((pid) => !before.has(pid));
    if (folder) writeFileSync(join(folder, "release"), "");
    const { output } = await ended(runId);
    expect(output).toContain("killing-holder");
    expect(ours.length, "the run's sandbox had a pasta").toBeGreaterThan(0);
    // A pasta that ended is gone from /proc (or left a zombie, whose command line is empty).
    const running = (pid: string) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "latin1").startsWith("pasta");
      } catch {
        return false;
      }
    };
    await until("the run's pasta has ended", () => !ours.some(running), 20_000).catch(() => undefined);
    expect(ours.filter(running)).toEqual([]);
  }, 120_000);
});
