import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import type { Readable } from "node:stream";
import { type BotHealth, maxProbeOutputChars } from "../core/bot-health.js";
import type { DockerEngine } from "../exec/docker/docker-engine.js";
import { frames } from "../exec/docker/docker-log-frames.js";

/** What one probe found. */
export interface ProbeResult {
  healthy: boolean;
  /** Its output, or why it failed; the last `maxProbeOutputChars` characters. */
  output: string;
}

/** The probe the supervisor runs: a command inside the container or an HTTP GET into its network. */
export type Probe = (containerId: string, signal?: AbortSignal) => Promise<ProbeResult>;

/** A bot's probe from its health check. `network` is the container's (host, none, a name). */
export function healthProbe(engine: DockerEngine, health: BotHealth, network: string): Probe {
  if (health.cmd !== undefined) {
    const cmd = health.cmd;
    return (id) => probeCommand(engine, id, cmd, health.timeout_ms);
  }
  const http = health.http!;
  return (id) => probeHttp(engine, id, network, http.port, http.path, health.timeout_ms);
}

/** Keeps the last `maxProbeOutputChars` characters: what a failing check said last matters most. */
export function boundedOutput(text: string): string {
  const trimmed = text.replace(/\s+$/, "");
  return trimmed.length > maxProbeOutputChars ? `…${trimmed.slice(-(maxProbeOutputChars - 1))}` : trimmed;
}

/**
 * `sh -c CMD` exec'd inside the container (its user, cgroup and so its limits, namespaces):
 * exit 0 is healthy. One that outlives `timeoutMs` is killed with what it started (the exec's
 * process tree, found from the host's /proc) and counts as a failure.
 */
export async function probeCommand(
  engine: DockerEngine,
  containerId: string,
  cmd: string,
  timeoutMs: number,
): Promise<ProbeResult> {
  const container = engine.docker.getContainer(containerId);
  const exec = await container.exec({
    Cmd: ["sh", "-c", cmd],
    AttachStdout: true,
    AttachStderr: true,
    AttachStdin: false,
    Tty: false,
  });
  const stream = (await exec.start({ hijack: true, stdin: false })) as unknown as Readable;
  let output = "";
  const reading = (async () => {
    for await (const frame of frames(stream as AsyncIterable<Buffer>)) {
      output = (output + frame.data.toString("utf8")).slice(-maxProbeOutputChars * 2);
    }
  })().catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    reading.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    const { Pid } = await exec.inspect();
    if (Pid > 0) await killTree(Pid);
    stream.destroy();
    return {
      healthy: false,
      output: boundedOutput(
        `${output}\nhealth command timed out after ${formatMs(timeoutMs)} and was killed`.trimStart(),
      ),
    };
  }
  // The stream ends before the exec is known to have exited: ask until it has.
  for (let i = 0; i < 50; i += 1) {
    const info = await exec.inspect();
    if (!info.Running) {
      const code = info.ExitCode ?? -1;
      return {
        healthy: code === 0,
        output: boundedOutput(code === 0 ? output : `${output}\nexit ${code}`.trimStart()),
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { healthy: false, output: boundedOutput(`${output}\nthe health command's exit was never reported`) };
}

/**
 * GET http://127.0.0.1:PORT/PATH as the container sees it: a `host` network container's ports are
 * the runner's own; any other container's network (none, bridge, a named one) is entered with
 * `nsenter --net` on its PID, where the runner's node makes the request. Needs root on the
 * runner (as does reaching Docker's socket). 2xx and 3xx are healthy.
 */
export async function probeHttp(
  engine: DockerEngine,
  containerId: string,
  network: string,
  port: number,
  path: string,
  timeoutMs: number,
): Promise<ProbeResult> {
  const args = [String(port), path, String(timeoutMs)];
  let command: string;
  let commandArgs: string[];
  if (network === "host") {
    command = process.execPath;
    commandArgs = ["-e", httpProbeScript, ...args];
  } else {
    const info = await engine.docker.getContainer(containerId).inspect();
    const pid = info.State.Pid;
    if (!pid) return { healthy: false, output: "the container is not running" };
    command = "nsenter";
    commandArgs = [`--target=${pid}`, "--net", "--", process.execPath, "-e", httpProbeScript, ...args];
  }
  return new Promise((resolve) => {
    execFile(
      command,
      commandArgs,
      { timeout: timeoutMs + 1000, killSignal: "SIGKILL", maxBuffer: 64 * 1024, env: {} },
      (error, stdout, stderr) => {
        const text = `${stdout}${stderr}`;
        if (error && (error as { killed?: boolean }).killed) {
          resolve({
            healthy: false,
            output: boundedOutput(`GET ${path} timed out after ${formatMs(timeoutMs)}`),
          });
          return;
        }
        if (error && /nsenter/.test(`${error.message}${stderr}`) && !text.includes("HTTP")) {
          resolve({
            healthy: false,
            output: boundedOutput(
              `cannot enter the container's network to probe it (${text.trim() || error.message}); the runner needs root for --health-http, or use --health-cmd`,
            ),
          });
          return;
        }
        resolve({ healthy: !error, output: boundedOutput(text) });
      },
    );
  });
}

/** Run by the runner's node inside the container's network: prints the status line and the body's start. */
const httpProbeScript = `
const [port, path, timeout] = process.argv.slice(1);
const req = require("node:http").get({ host: "127.0.0.1", port: Number(port), path, timeout: Number(timeout) }, (res) => {
  let body = "";
  res.setEncoding("utf8");
  res.on("data", (chunk) => { if (body.length < 512) body += chunk; });
  res.on("end", () => {
    process.stdout.write("HTTP " + res.statusCode + "\\n" + body.slice(0, 512));
    process.exitCode = res.statusCode >= 200 && res.statusCode < 400 ? 0 : 1;
  });
});
req.on("timeout", () => { process.stdout.write("GET " + path + " timed out"); req.destroy(); process.exitCode = 1; });
req.on("error", (error) => { if (!process.exitCode) { process.stdout.write("GET " + path + ": " + error.message); process.exitCode = 1; } });
`;

/** Kills a process and every process under it (children first found, all with SIGKILL). */
async function killTree(root: number): Promise<void> {
  const children = new Map<number, number[]>();
  for (const entry of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (!Number.isFinite(ppid)) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const tree: number[] = [];
  const walk = (pid: number) => {
    tree.push(pid);
    for (const child of children.get(pid) ?? []) walk(child);
  };
  walk(root);
  for (const pid of tree) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
