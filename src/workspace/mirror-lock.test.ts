import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RunyardError } from "../core/errors.js";
import { withMirrorLock } from "./mirror-lock.js";

const dir = mkdtempSync(join(tmpdir(), "runyard-mirror-lock-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("withMirrorLock", () => {
  it("runs the holders of one mirror one at a time, in order, holding the lock file meanwhile", async () => {
    const mirror = join(dir, "a.git");
    const log: string[] = [];
    let inside = 0;
    await Promise.all(
      [1, 2, 3, 4].map((n) =>
        withMirrorLock(mirror, {}, async () => {
          inside++;
          log.push(`start ${n} (${inside} inside, lock ${existsSync(`${mirror}.lock`)})`);
          await Promise.resolve();
          inside--;
          log.push(`end ${n}`);
        }),
      ),
    );
    expect(log).toEqual([1, 2, 3, 4].flatMap((n) => [`start ${n} (1 inside, lock true)`, `end ${n}`]));
    expect(existsSync(`${mirror}.lock`)).toBe(false);
  });

  it("goes on after a holder fails, and a waiter canceled in the queue leaves it without running", async () => {
    const mirror = join(dir, "b.git");
    let release = () => {};
    let entered = () => {};
    const inside = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const first = withMirrorLock(mirror, {}, () => {
      entered();
      return new Promise<void>((resolve) => {
        release = resolve;
      });
    });
    const failing = withMirrorLock(mirror, {}, async () => {
      throw new Error("git failed");
    });
    const controller = new AbortController();
    let ranCanceled = false;
    const canceled = withMirrorLock(mirror, { signal: controller.signal }, async () => {
      ranCanceled = true;
    });
    const last = withMirrorLock(mirror, {}, async () => "last ran");
    controller.abort();
    await expect(canceled).rejects.toBeInstanceOf(RunyardError);
    await inside;
    release();
    await first;
    await expect(failing).rejects.toThrow("git failed");
    expect(await last).toBe("last ran");
    expect(ranCanceled).toBe(false);
  });
});
