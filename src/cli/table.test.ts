import { describe, expect, it } from "vitest";
import { table } from "./table.js";

describe("table", () => {
  it("aligns columns on the printable text of each cell", () => {
    expect(
      table([
        ["RUN", "NAME"],
        ["r1", "\u001b[2Jx"],
        ["r22", "deploy"],
      ]),
    ).toBe("RUN  NAME\nr1   x\nr22  deploy");
  });
});

describe("table widths", () => {
  it("lines columns up by terminal cells: CJK and emoji take two, combining marks none", () => {
    const out = table([
      ["NAME", "STATUS"],
      ["デプロイ", "success"],
      ["🚀 ship", "failed"],
      ["cafe\u0301", "queued"],
      ["plain", "running"],
    ]).split("\n");
    // Every STATUS starts in the same terminal column: 8 cells of the widest name, then two spaces.
    expect(out[1]).toBe("デプロイ  success");
    expect(out[2]).toBe("🚀 ship   failed");
    expect(out[3]).toBe("cafe\u0301      queued");
    expect(out[4]).toBe("plain     running");
  });
});
