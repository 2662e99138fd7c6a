import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { deviceNumbers, ext4Discards, freesSlowly, mountDiscards } from "./discarding-mounts.js";

const table = [
  "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict",
  "29 24 0:26 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683620k",
  "41 26 254:16 / /srv rw,noatime shared:5 - ext4 /dev/vdb rw,errors=remount-ro",
  "42 26 0:50 / /data rw,relatime shared:6 - btrfs /dev/vdc rw,ssd,discard=async,space_cache=v2",
  "43 26 253:1 / /var rw,relatime - xfs /dev/mapper/var rw,attr2,discard,inode64",
  "44 26 254:16 /sub /mnt/bound rw,discard - ext4 /dev/vdb rw",
  "45 26 0:60 / /var/lib/docker/overlay2/x/merged rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w",
].join("\n");

describe("which mounts wait for the disk as they free a block", () => {
  it("reads `discard` from a mount's own options or its file system's, but not `discard=async`", () => {
    expect(mountDiscards(table, "254:0")).toBe(true);
    expect(mountDiscards(table, "0:26")).toBe(false);
    expect(mountDiscards(table, "0:50")).toBe(false);
    expect(mountDiscards(table, "253:1")).toBe(true);
    // The same device mounted twice, one of them with `discard`.
    expect(mountDiscards(table, "254:16")).toBe(true);
    expect(mountDiscards(table, "8:1")).toBeUndefined();
    // An overlay (a runner in a container) frees as its upper layer does, which it does not show.
    expect(mountDiscards(table, "0:60")).toBe(true);
  });

  it("names a stat's device as mountinfo does, small and large numbers alike", () => {
    expect(deviceNumbers(254 * 256)).toBe("254:0");
    expect(deviceNumbers(26)).toBe("0:26");
    // glibc's encoding: a minor's bits past 8 from bit 20, a major's past 12 from bit 44.
    const minor = 0x123456;
    const major = 0x2345;
    const dev =
      (major & 0xfff) * 2 ** 8 +
      (minor & 0xff) +
      (minor - (minor & 0xff)) * 2 ** 12 +
      (major - (major & 0xfff)) * 2 ** 32;
    expect(deviceNumbers(dev)).toBe(`${major}:${minor}`);
  });

  it("answers for this machine's own mounts: /proc and /dev/shm free without a wait", () => {
    expect(freesSlowly(statSync("/dev/shm").dev)).toBe(false);
    expect(freesSlowly(statSync("/proc").dev)).toBe(false);
  });
  // Needs root and a loop device to mount an ext4 image of its own: CI has both, and runs it.
  const canMount =
    process.getuid?.() === 0 && statSync("/dev/loop-control", { throwIfNoEntry: false }) !== undefined;
  it.runIf(canMount || process.env.CI === "true")(
    "reads `discard` an ext4 superblock gives by default (tune2fs -o discard), which mountinfo leaves out",
    () => {
      const folder = mkdtempSync(join(tmpdir(), "ext4-discard-"));
      const image = join(folder, "image");
      const mount = join(folder, "mount");
      execFileSync("truncate", ["-s", "32M", image]);
      execFileSync("mkfs.ext4", ["-q", "-F", image]);
      execFileSync("tune2fs", ["-o", "discard", image], { stdio: "ignore" });
      execFileSync("mkdir", [mount]);
      execFileSync("mount", ["-o", "loop", image, mount]);
      try {
        const numbers = deviceNumbers(statSync(mount).dev);
        expect(
          mountDiscards(execFileSync("cat", ["/proc/self/mountinfo"], { encoding: "utf8" }), numbers),
        ).toBe(false);
        expect(ext4Discards(numbers)).toBe(true);
        expect(freesSlowly(statSync(mount).dev)).toBe(true);
      } finally {
        execFileSync("umount", [mount]);
        rmSync(folder, { recursive: true, force: true });
      }
    },
  );
});
