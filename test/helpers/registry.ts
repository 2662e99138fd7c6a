import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { freePort } from "./free-port.js";

export interface TestRegistry {
  /** `127.0.0.1:PORT`: Docker treats 127.0.0.0/8 as an insecure (plain HTTP) registry by default. */
  host: string;
  username: string;
  password: string;
  stop(): Promise<void>;
}

/**
 * Starts Debian's docker-registry (distribution 2.8) on a free 127.0.0.1 port with htpasswd
 * (bcrypt) auth and its storage in a temp folder; resolves once `/v2/` answers 401.
 */
export async function startRegistry(): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "runyard-registry-"));
  const username = "bot-puller";
  const password = `pw-${randomBytes(12).toString("hex")}`;
  // -i: the password on stdin, not in the process list.
  execFileSync("htpasswd", ["-B", "-i", "-c", join(dir, "htpasswd"), username], {
    input: password,
    stdio: ["pipe", "ignore", "ignore"],
  });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = join(dir, "config.yml");
  writeFileSync(
    config,
    [
      "version: 0.1",
      "log:",
      "  level: info",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${join(dir, "data")}`,
      "  delete:",
      "    enabled: true",
      "http:",
      `  addr: ${host}`,
      "auth:",
      "  htpasswd:",
      "    realm: runyard-test",
      `    path: ${join(dir, "htpasswd")}`,
      "",
    ].join("\n"),
  );
  const child = spawn("docker-registry", ["serve", config], { stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  try {
    await listening(child, output);
    const answer = await fetch(`http://${host}/v2/`);
    if (answer.status !== 401) throw new Error(`registry /v2/ answered ${answer.status}, not 401`);
  } catch (error) {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`docker-registry did not start: ${(error as Error).message}\n${output.join("\n")}`);
  }
  let stopped: Promise<void> | undefined;
  return {
    host,
    username,
    password,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }).then(() => rmSync(dir, { recursive: true, force: true }));
      return stopped;
    },
  };
}

/** Resolves when the registry logs that it listens (it logs to stderr); rejects if it exits first. */
function listening(child: ChildProcess, output: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`docker-registry exited with ${code}`));
    child.once("exit", onExit);
    child.once("error", reject);
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on("line", (line) => {
        output.push(line);
        if (output.length > 50) output.shift();
        if (/listening on/.test(line)) {
          child.off("exit", onExit);
          resolve();
        }
      });
    }
  });
}
