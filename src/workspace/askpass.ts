import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { GitCredentials } from "./types.js";

/**
 * The script git asks for a username and a password (GIT_ASKPASS). It holds no secret: it
 * prints what the one git process it serves was given in its environment, so the token is in
 * no file, argument, URL or config, and gone when that process ends.
 */
const script = `#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$RUNYARD_GIT_USERNAME" ;;
  *) printf '%s\\n' "$RUNYARD_GIT_PASSWORD" ;;
esac
`;

/**
 * Runs `use` with the env that lets one git process authenticate with `credentials`; the
 * script's private folder (0700) is removed afterwards. Without credentials `use` gets no env.
 */
export async function withAskpass<T>(
  credentials: GitCredentials | undefined,
  use: (env: Record<string, string>) => Promise<T>,
): Promise<T> {
  if (!credentials) return use({});
  const dir = await mkdtemp(join(tmpdir(), "runyard-askpass-"));
  try {
    const path = join(dir, "askpass.sh");
    await writeFile(path, script, { mode: 0o700 });
    return await use({
      GIT_ASKPASS: path,
      RUNYARD_GIT_USERNAME: credentials.username ?? "x-access-token",
      RUNYARD_GIT_PASSWORD: credentials.token,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
