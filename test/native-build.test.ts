import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import { busyboxImage, requireDocker } from "./helpers/docker.js";

const haveDocker = await requireDocker();
const nativeFolder = new URL("../native/", import.meta.url).pathname;

/**
 * `npm install` compiles the native helpers (native/build.sh) under the installing user's umask.
 * The two static ones run inside containers as a user that is not the runner's (a step's cwd's
 * owner, or nobody), so they must be executable by all whatever the umask was.
 */
describe("native/build.sh under a strict umask (027, as hardened machines set it)", () => {
  const built = (() => {
    let folder: string | undefined;
    return () => {
      if (folder) return folder;
      folder = join(tempDir("runyard-native-"), "native");
      cpSync(nativeFolder, folder, {
        recursive: true,
        filter: (source) => !/\/native\/build(\/|$)/.test(source),
      });
      execFileSync("sh", ["-c", "umask 027 && sh build.sh"], { cwd: folder, stdio: "pipe" });
      return folder;
    };
  })();

  it("leaves the static helpers executable by every user", () => {
    for (const helper of ["cwd-check", "egress-forward"]) {
      const mode = statSync(join(built(), "build", helper)).mode & 0o777;
      expect(mode.toString(8), helper).toBe("755");
    }
  }, 120_000);

  it.skipIf(!haveDocker)(
    "builds a cwd checker a step's container user can run",
    async () => {
      const image = await busyboxImage();
      const checker = join(built(), "build", "cwd-check");
      const work = tempDir("runyard-native-cwd-");
      mkdirSync(join(work, "step"));
      const folder = join(work, "step");
      const info = statSync(folder, { bigint: true });
      const output = execFileSync(
        "docker",
        [
          "run",
          "--rm",
          "--network=none",
          "--user=65534:65534",
          `--mount=type=bind,source=${checker},target=/.runyard-cwd-check,readonly`,
          `--mount=type=bind,source=${folder},target=${folder}`,
          `--workdir=${folder}`,
          "--entrypoint=",
          image,
          "/.runyard-cwd-check",
          `${info.dev}:${info.ino}`,
          "sh",
          "-c",
          "echo checked-ok",
        ],
        { encoding: "utf8" },
      );
      expect(output).toBe("checked-ok\n");
    },
    120_000,
  );
});
