import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor } from "../src/exec/create-executor.js";
import { nativeHelperPath } from "../src/exec/native-helpers.js";
import { probeSandbox, Sandbox } from "../src/exec/sandbox/sandbox.js";
import { RunnerEgress } from "../src/exec/sandbox/sandbox-network.js";
import type { ExecRequest, ExecResult, OutputStream, SandboxNetwork } from "../src/exec/types.js";

/**
 * A command in a sandbox with a network of its own keeps the process contract of every sandboxed
 * command (exit codes, signals, timeouts, grace, nothing left running), though the egress
 * forwarder stands between bwrap and the command; and it has only its own loopback.
 */
const probe = await probeSandbox();
if (probe.isolation !== "sandbox") throw new Error(`these tests need bubblewrap: ${probe.problem}`);
const forwarder = nativeHelperPath("egress-forward");
if (!existsSync(forwarder)) throw new Error(`these tests need ${forwarder}: run sh native/build.sh`);

const root = mkdtempSync(join(tmpdir(), "runyard-sandbox-net-test-"));
const sandbox = new Sandbox({ bwrap: probe.bwrap, hide: [] });
const launchers = {
  "fork-server": createExecutor({ baseEnv: {}, sandbox }),
  spawn: createExecutor({ baseEnv: {}, launcher: "spawn", sandbox }),
};
let executor: (typeof launchers)["spawn"] = launchers.spawn;
const refused: string[] = [];
let egress: RunnerEgress;
let network: SandboxNetwork;
const env = { PATH: "/usr/local/bin:/usr/bin:/bin" };

beforeAll(async () => {
  egress = await RunnerEgress.start({
    forwarder,
    allow: {},
    refused: (tenant, d) => refused.push(`${tenant}:${d.host}:${d.port}`),
  });
  network = await egress.networkFor("acme");
});
afterAll(async () => {
  for (const launcher of Object.values(launchers)) launcher.close();
  await egress.close();
  rmSync(root, { recursive: true, force: true });
});

async function run(argv: string[], options: Partial<ExecRequest> = {}) {
  const out: Record<OutputStream, string> = { stdout: "", stderr: "" };
  const result: ExecResult = await executor.run({
    argv,
    env,
    cwd: root,
    killGraceMs: 2000,
    exposure: { network },
    ...options,
    onOutput: (stream, data) => {
      out[stream] += data;
      options.onOutput?.(stream, data);
    },
  });
  return { result, stdout: out.stdout, stderr: out.stderr };
}

/** Live processes of the host whose argv carries `marker` (zombies left out). */
function withMarker(marker: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "latin1");
      const state = stat.slice(stat.lastIndexOf(") ") + 2).split(" ")[0];
      if (state !== "Z" && readFileSync(`/proc/${name}/cmdline`, "latin1").includes(marker))
        found.push(Number(name));
    } catch {
      // gone while we looked
    }
  }
  return found;
}

describe.each(Object.keys(launchers) as Array<keyof typeof launchers>)(
  "a sandboxed command with a network of its own, through %s",
  (name) => {
    beforeAll(() => {
      executor = launchers[name];
    });

    it("keeps exit codes, output, its environment and the proxy's variables", async () => {
      const ok = await run(["bash", "-c", 'echo "$ONLY_THIS $HTTPS_PROXY $NO_PROXY"'], {
        env: { ...env, ONLY_THIS: "yes" },
      });
      expect(ok.result).toMatchObject({ status: "success", exitCode: 0 });
      expect(ok.stdout).toBe("yes http://127.0.0.1:3128 localhost,127.0.0.1,::1\n");
      const failed = await run(["bash", "-c", "echo oops >&2; exit 3"]);
      expect(failed.result).toMatchObject({ status: "failed", exitCode: 3 });
      expect(failed.stderr).toBe("oops\n");
      const killed = await run(["bash", "-c", "kill -KILL $$"]);
      expect(killed.result).toMatchObject({ status: "failed", exitCode: 137 });
    });

    it("on timeout stops everything the command started", async () => {
      const marker = `runyard-test-${randomUUID()}`;
      let seen: number[] = [];
      const { result } = await run(["bash", "-c", `bash -c 'echo ready; sleep 100; :' ${marker} & wait`], {
        timeoutMs: 1500,
        onOutput: (_stream, data) => {
          if (data.includes("ready")) seen = withMarker(marker);
        },
      });
      expect(seen.length).toBeGreaterThan(0);
      expect(result.status).toBe("timeout");
      expect(withMarker(marker)).toEqual([]);
    });

    it("gives a command that traps SIGTERM its grace, then kills it", async () => {
      const controller = new AbortController();
      const { result } = await run(
        ["bash", "-c", 'trap "echo got-term" TERM; echo ready; sleep 100 & wait; sleep 100'],
        {
          signal: controller.signal,
          killGraceMs: 500,
          onOutput: (_stream, data) => {
            if (data.includes("ready")) controller.abort();
          },
        },
      );
      expect(result.status).toBe("canceled");
      expect(result.durationMs).toBeGreaterThanOrEqual(500);
    });

    it("has only its own loopback: a listener on the host's 127.0.0.1 is not reached, its own is", async () => {
      let reached = 0;
      const host = createServer((socket) => {
        reached++;
        socket.on("error", () => {});
        socket.end();
      });
      await new Promise<void>((resolve) => host.listen(0, "127.0.0.1", resolve));
      const address = host.address();
      const port = typeof address === "object" && address ? address.port : 0;
      try {
        const { stdout } = await run([
          "bash",
          "-c",
          [
            `(exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null && echo host-reached || echo host-refused`,
            `python3 -m http.server ${port} --bind 127.0.0.1 >/dev/null 2>&1 & for i in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:${port}/ && break; sleep 0.1; done`,
            `curl -sf -o /dev/null http://127.0.0.1:${port}/ && echo own-reached || echo own-refused`,
            "ip -brief link | cut -d' ' -f1",
          ].join("\n"),
        ]);
        expect(stdout).toBe("host-refused\nown-reached\nlo\n");
        expect(reached).toBe(0);
      } finally {
        host.close();
      }
    });

    it("is refused what the proxy refuses, and the runner is told which tenant asked", async () => {
      const { stdout } = await run([
        "bash",
        "-c",
        "curl -s -m 5 -o /dev/null -w '%{http_connect}' https://169.254.169.254/latest/meta-data/",
      ]);
      expect(stdout).toBe("403");
      expect(refused).toContain("acme:169.254.169.254:443");
      const plain = await run(["bash", "-c", "curl -s -m 5 http://169.254.169.254/latest/meta-data/"]);
      expect(plain.stdout).toContain(
        "egress to 169.254.169.254:80 is not allowed from this sandbox (169.254.169.254 leads to 169.254.169.254, an internal address (link-local))",
      );
    });
  },
);
