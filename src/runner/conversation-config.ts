import { randomUUID } from "node:crypto";
import { constants, existsSync, lstatSync } from "node:fs";
import { copyFile, cp, mkdir, open, readdir, rename, rm, symlink } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, join } from "node:path";

/**
 * CODEX_HOME for a turn whose `$HOME` is not the user's: `<state>/codex-home`, its sessions kept
 * for follow-ups, the user's `config.toml` (provider, endpoint, model) and `AGENTS.md` copied in
 * each turn from `userHome`, read outside any sandbox. With `login`, `auth.json` links to the
 * user's own, shown read-write (`shown`), so a token Codex refreshes is the user's too: a copy
 * would leave the user's stale (a refresh token is good once).
 */
export async function conversationCodexHome(
  state: string,
  userHome: string,
  { login }: { login: boolean },
): Promise<{ home: string; shown: string[] }> {
  const home = await stateFolder(join(state, "codex-home"));
  await layUserFiles(home, userHome, ["config.toml", "AGENTS.md"]);
  const link = join(home, "auth.json");
  const userLogin = join(userHome, "auth.json");
  // Only the link the runner laid is removed: a login the conversation made itself stays.
  if (lstatSync(link, { throwIfNoEntry: false })?.isSymbolicLink()) await rm(link, { force: true });
  if (!login || !existsSync(userLogin)) return { home, shown: [] };
  await rm(link, { force: true });
  await symlink(userLogin, link);
  return { home, shown: [userLogin] };
}

/**
 * OpenCode's config folder (XDG_CONFIG_HOME) for a turn whose `$HOME` is not the user's:
 * `<state>/config-home` with a copy of the user's `opencode` folder (their providers and model;
 * its `node_modules` left out: a turn runs `--pure`, without external plugins), made anew each turn.
 *
 * The copy is read-only to the turn. At every start OpenCode installs its plugin package
 * (`@opencode-ai/plugin` and what it needs, 64 MB, from the npm registry) into each config folder
 * it may write that has no `node_modules`, in the background of the turn; in a copy made anew each
 * turn that meant a download and an install at every turn, cut off when the turn ended, and
 * several seconds of CPU. A folder it may not write it leaves alone.
 */
export async function conversationConfigHome(
  state: string,
  runnerEnv: Readonly<Record<string, string | undefined>>,
): Promise<string> {
  const home = await stateFolder(join(state, "config-home"));
  const userConfig = join(
    runnerEnv.XDG_CONFIG_HOME || join(runnerEnv.HOME || homedir(), ".config"),
    "opencode",
  );
  const copy = join(home, "opencode");
  // The last turn's copy, moved out of the state (beside it, where no turn writes) and removed
  // there; a link a turn left in its place is moved and removed, never opened. Made writable
  // first: moving a folder to another parent rewrites its `..`, which a runner that is not root
  // may only do in a folder it may write.
  await folderMode(copy, 0o700).catch(() => {
    // Not a folder (a link or a file a turn left, or nothing): moved as it is.
  });
  const old = `${state}.config-${randomUUID()}`;
  const moved = await rename(copy, old).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return false;
      throw error;
    },
  );
  if (moved) await removeTurnsTree(old);
  await cp(userConfig, copy, {
    recursive: true,
    dereference: true,
    filter: (source) => basename(source) !== "node_modules",
  }).catch(() => {
    // None (or unreadable): OpenCode's defaults.
  });
  await mkdir(copy, { recursive: true });
  await folderMode(copy, 0o555);
  return home;
}

/**
 * Sets `folder`'s mode through a descriptor opened without following a link: a link left in the
 * folder's place (by a turn of the conversation) would have a chmod change a folder elsewhere, with
 * the runner's rights. Throws where `folder` is not a folder.
 */
async function folderMode(folder: string, mode: number): Promise<void> {
  const opened = await open(folder, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    await opened.chmod(mode);
  } finally {
    await opened.close();
  }
}

/**
 * A folder of the conversation's state that the runner writes into. The last turn could write
 * in the state: a link it left in the folder's place is removed, never followed, so the runner
 * writes nowhere else.
 */
async function stateFolder(dir: string): Promise<string> {
  if (lstatSync(dir, { throwIfNoEntry: false })?.isDirectory() === false) await rm(dir, { force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // A turn may have taken its own rights on it away (a runner that is not root could then lay
  // nothing in it, and every later turn of the conversation would fail).
  await folderMode(dir, 0o700);
  return dir;
}

/**
 * Removes a tree a turn could write in, once it is out of the state. A turn may have left
 * folders it may not write (a runner that is not root cannot remove their entries): those are
 * made writable, through descriptors that follow no link, and the removal tried again. What still
 * cannot go (a tree deeper than a path may be long) stays beside the state, costing the
 * conversation nothing more.
 */
async function removeTurnsTree(tree: string): Promise<void> {
  const remove = () => rm(tree, { recursive: true, force: true });
  await remove().catch(async () => {
    await writableFolders(tree).catch(() => {});
    await remove().catch(() => {});
  });
}

/** Gives every folder under `folder` (itself included) its owner's rights, following no link. */
async function writableFolders(folder: string): Promise<void> {
  await folderMode(folder, 0o700);
  for (const entry of await readdir(folder, { withFileTypes: true }))
    if (entry.isDirectory()) await writableFolders(join(folder, entry.name));
}

/**
 * Copies the user's `names` from `userDir` into `dir`, each anew: what the user removed since
 * the last turn goes from the copy too, and a link a turn left in a file's place is replaced,
 * never written through.
 */
async function layUserFiles(dir: string, userDir: string, names: readonly string[]): Promise<void> {
  for (const name of names) {
    await rm(join(dir, name), { force: true });
    await copyFile(join(userDir, name), join(dir, name), constants.COPYFILE_EXCL).catch(() => {
      // Absent (or unreadable): the CLI's defaults.
    });
  }
}
