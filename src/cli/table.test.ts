import { describe, expect, it } from "vitest";
import { printable, table } from "./table.js";

describe("printable", () => {
  it("removes an OSC window title and a CSI screen clear, keeping the text around them", () => {
    expect(printable("\u001b]0;pwned\u0007\u001b[2Jx")).toBe("x");
    expect(printable("a\u001b[31mred\u001b[0mb")).toBe("aredb");
    expect(printable("t\u001b]8;;https://x.test\u001b\\link\u001b]8;;\u001b\\")).toBe("tlink");
  });

  it("removes every C0 control, DEL and C1 control, and 8-bit escape sequences", () => {
    const controls = [
      ...Array.from({ length: 32 }, (_, i) => i),
      0x7f,
      ...Array.from({ length: 32 }, (_, i) => 0x80 + i),
    ]
      // ESC and CSI start sequences ("ESC b" and "CSI b" are whole ones), tested above.
      .filter((code) => code !== 0x1b && code !== 0x9b)
      .map((code) => String.fromCharCode(code));
    for (const control of controls) {
      expect(printable(`a${control}b`).replace(" ", ""), `U+${control.charCodeAt(0).toString(16)}`).toBe(
        "ab",
      );
    }
    expect(printable("a\u009b2Jb\u009d0;title\u009cc")).toBe("abc");
    expect(printable("bell\u0007 back\bspace")).toBe("bell backspace");
  });

  it("turns tabs and line breaks into spaces and leaves other text, Unicode included, alone", () => {
    expect(printable("one\ttwo\r\nthree")).toBe("one two  three");
    expect(printable("déploiement ✔ 部署")).toBe("déploiement ✔ 部署");
  });
});

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
