import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { procFilesToCover } from "./proc-covers.js";

function file(path: string, mode: number): void {
  writeFileSync(path, "");
  chmodSync(path, mode);
}

describe("the /proc files a sandbox covers read-only", () => {
  it("lists the files only their owner or group may write, at any depth, outside the processes' folders and bwrap's covers", () => {
    const root = mkdtempSync(join(tmpdir(), "runyard-proc-covers-"));
    for (const folder of ["acpi", "a/b/c", "a/b/c/d", "42", "sys", "irq", "bus", "elsewhere"])
      mkdirSync(join(root, folder), { recursive: true });
    file(join(root, "mtrr"), 0o644);
    file(join(root, "acpi", "wakeup"), 0o644);
    file(join(root, "a/b/c", "deep"), 0o600);
    file(join(root, "a/b/c/d", "deeper"), 0o644);
    file(join(root, "a", "group"), 0o464);
    file(join(root, "a", "no-write"), 0o555);
    file(join(root, "cpuinfo"), 0o444);
    file(join(root, "pressure"), 0o666);
    file(join(root, "42", "oom_adj"), 0o644);
    file(join(root, "sys", "core_pattern"), 0o644);
    file(join(root, "irq", "default_smp_affinity"), 0o644);
    file(join(root, "sysrq-trigger"), 0o200);
    file(join(root, "elsewhere", "writable"), 0o644);
    symlinkSync(join(root, "elsewhere"), join(root, "net"));
    expect(procFilesToCover(root).sort()).toEqual(
      [
        join(root, "a/b/c/deep"),
        join(root, "a/b/c/d/deeper"),
        join(root, "a/group"),
        join(root, "acpi/wakeup"),
        join(root, "elsewhere/writable"),
        join(root, "mtrr"),
      ].sort(),
    );
  });

  // Mounting needs root, as the suite runs in CI.
  it.runIf(process.getuid?.() === 0 || process.env.CI === "true")(
    "leaves out what another filesystem mounted inside holds (nfsd's /proc/fs/nfsd): a fresh proc has none of it",
    () => {
      const root = mkdtempSync(join(tmpdir(), "runyard-proc-covers-"));
      const nfsd = join(root, "fs", "nfsd");
      mkdirSync(nfsd, { recursive: true });
      file(join(root, "mtrr"), 0o644);
      execFileSync("mount", ["-t", "tmpfs", "none", nfsd]);
      try {
        file(join(nfsd, "threads"), 0o644);
        expect(procFilesToCover(root)).toEqual([join(root, "mtrr")]);
      } finally {
        execFileSync("umount", [nfsd]);
      }
    },
  );

  it("finds what this kernel's /proc has, none of it a process's", () => {
    const files = procFilesToCover();
    expect(
      files.every((path) => path.startsWith("/proc/") && !/^\/proc\/(\d+|self|thread-self|sys)\//.test(path)),
    ).toBe(true);
    expect(procFilesToCover()).toBe(files);
  });
});
