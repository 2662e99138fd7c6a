import { runCli, tempDir } from "./cli.js";
import { adminToken, freePort, type Proc, startCli, testTimings } from "./server.js";

/** Credentials a test's own shell may hold, kept from the `up` under test and its CLI calls. */
export const noAuth = { RUNYARD_TOKEN: "", ADOS_TOKEN: "", RUNYARD_SERVER_URL: "", ADOS_API_URL: "" };

export interface SandboxedUp {
  proc: Proc;
  url: string;
  home: string;
  /** The folder `up` runs in: its runner's working folder. */
  work: string;
  /** A user token of no tenant, as an operator hands one out (`runyard token create --user`). */
  userToken: string;
}

/**
 * A real `runyard up` as users have it, its sandbox on, in a working folder of its own, and an ordinary user's token to attack it with.
 * Its home is `home` (a new temp folder by default).
 */
export async function startSandboxedUp(
  env: Record<string, string> = {},
  home = tempDir(),
): Promise<SandboxedUp> {
  const work = tempDir("runyard-work-");
  const port = await freePort();
  const proc = startCli(
    ["up", "--port", String(port), "--home", home],
    { ...noAuth, ...testTimings(), RUNYARD_ADMIN_TOKEN: adminToken, ...env },
    work,
  );
  await proc.waitFor("local runner connected");
  // The attacks on it hold only where its runner sandboxes: one whose bubblewrap probe failed says
  // so, and would make their leaks look like the defences' own.
  if (/without a sandbox/.test(proc.output()))
    throw new Error(`runyard up runs its steps without a sandbox; it said:\n${proc.output().slice(-4000)}`);
  const url = `http://127.0.0.1:${port}`;
  const created = await runCli(["token", "create", "--user", "--name", "mallory"], {
    env: { ...noAuth, RUNYARD_SERVER_URL: url, RUNYARD_TOKEN: adminToken },
  });
  if (created.code !== 0) throw new Error(`token create failed: ${created.stderr}`);
  return { proc, url, home, work, userToken: created.stdout.trim() };
}

/** A sandboxed `up` whose runner also lists `listed` (a folder of its own) in its step_cwd_roots. */
export async function startListedUp(): Promise<SandboxedUp & { listed: string }> {
  const listed = tempDir("runyard-listed-");
  return { ...(await startSandboxedUp({ RUNYARD_STEP_CWD_ROOTS: listed })), listed };
}
