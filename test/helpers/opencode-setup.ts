import { spawn } from "node:child_process";
import { on, once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, rmSync, watch } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { opencodeAgent } from "../../src/agents/opencode.js";
import { pinnedCli } from "./agent-turn.js";

/** How long OpenCode's first install may take before the suite goes on without it. */
const installWaitMs = 180_000;

/** Where OpenCode keeps its global config, as it finds it for the tests' turns (their HOME). */
const configDir = join(process.env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "opencode");
const installed = () => existsSync(join(configDir, "node_modules", "@opencode-ai", "plugin", "package.json"));

/**
 * Global setup of the integration projects: the machine's OpenCode as a user's is after their
 * first long turn. At every start OpenCode installs its plugin package (`@opencode-ai/plugin`, 64
 * MB with what it needs, from the npm registry) into its global config folder, in the background,
 * until one install finishes; the tests' unsandboxed turns use the machine's own
 * `~/.config/opencode`, as users' turns do, and none lasts long enough to finish it, so every
 * turn began it again (1.5 s of CPU a turn here, 9 s of the OpenCode file's 57). A turn runs
 * `--pure` and never loads what it installs. Sandboxed turns get a read-only copy without
 * `node_modules` (src/runner/conversation-config.ts) and are not affected.
 *
 * OpenCode installs while it waits (`opencode debug wait`) until the package is there; on a
 * machine where it cannot (no registry) the suite goes on as before, only slower.
 */
export default async function setup(): Promise<void> {
  if (installed()) return;
  let bin: string | undefined;
  try {
    bin = pinnedCli(opencodeAgent);
  } catch {
    // No OpenCode here: its tests say why (under CI=true they fail).
  }
  if (!bin) return;
  const cwd = mkdtempSync(join(tmpdir(), "runyard-opencode-setup-"));
  // OpenCode makes the folder too; made here first, so its files' arrival can be watched.
  mkdirSync(configDir, { recursive: true });
  const started = Date.now();
  const child = spawn(bin, ["debug", "wait"], { cwd, stdio: "ignore" });
  const exited = once(child, "close");
  // npm's Arborist, inside OpenCode, writes the lockfile once the packages are in place.
  const complete = () => installed() && existsSync(join(configDir, "package-lock.json"));
  const watcher = watch(configDir);
  try {
    const done = await Promise.race([
      (async () => {
        for await (const _change of on(watcher, "change", { close: ["close"] })) if (complete()) return true;
        return false;
      })(),
      exited.then(complete),
      delay(installWaitMs, false, { ref: false }),
    ]);
    process.stderr.write(
      done
        ? `OpenCode's first install into ${configDir}: ${Date.now() - started} ms\n`
        : `OpenCode did not install its plugin package into ${configDir} within ${installWaitMs / 1000} s; its turns go on installing it in the background\n`,
    );
  } finally {
    watcher.close();
    child.kill("SIGTERM");
    await exited;
    rmSync(cwd, { recursive: true, force: true });
  }
}
