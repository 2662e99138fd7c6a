import { chmodSync, lstatSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DEVICE_NODES, ownDeviceNodes } from "./device-nodes.js";

const root = mkdtempSync(join(tmpdir(), "runyard-device-nodes-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

// Making device nodes takes root (CI runs as root); elsewhere only the refusal is checked.
describe.runIf(process.getuid?.() === 0 || process.env.CI === "true")(
  "a root runner's own device nodes",
  () => {
    it("makes each node bwrap's --dev shows, owned by nobody, read and written by all", () => {
      const folder = join(root, "made");
      expect(ownDeviceNodes(folder)).toBe(folder);
      for (const [name, major, minor] of DEVICE_NODES) {
        const info = lstatSync(join(folder, name));
        expect(info.isCharacterDevice(), name).toBe(true);
        expect(info.rdev, name).toBe(major * 256 + minor);
        expect([info.uid, info.gid], name).toEqual([65534, 65534]);
        expect(info.mode & 0o7777, name).toBe(0o666);
      }
    });

    it("keeps nodes a last start made as they are, and makes them again where one was changed", () => {
      const folder = join(root, "kept");
      ownDeviceNodes(folder);
      const before = lstatSync(join(folder, "zero")).ino;
      expect(ownDeviceNodes(folder)).toBe(folder);
      expect(lstatSync(join(folder, "zero")).ino).toBe(before);

      chmodSync(join(folder, "null"), 0o600);
      rmSync(join(folder, "tty"));
      writeFileSync(join(folder, "tty"), "not a device");
      expect(ownDeviceNodes(folder)).toBe(folder);
      expect(lstatSync(join(folder, "null")).mode & 0o7777).toBe(0o666);
      expect(lstatSync(join(folder, "tty")).isCharacterDevice()).toBe(true);
    });
  },
);

it("says why there are none where the folder cannot be made", () => {
  const file = join(root, "a-file");
  writeFileSync(file, "");
  const result = ownDeviceNodes(join(file, "nodes"));
  expect(result).toEqual({
    problem: expect.stringMatching(/^cannot make device nodes in .*a-file\/nodes: /),
  });
});
