import { describe, expect, it } from "vitest";
import { keepColours, printable, printableLines, TerminalOutput } from "./terminal-text.js";

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

describe("printableLines", () => {
  it("keeps line breaks and removes everything else printable removes", () => {
    expect(printableLines("a\u001b]0;t\u0007\nb\u001b[31m\tc")).toBe("a\nb c");
  });
});

describe("keepColours", () => {
  it("keeps colours, line breaks, tabs and carriage returns", () => {
    const coloured = "\u001b[1;31mred\u001b[0m\tx\r\ny\u001b[38;2;1;2;3mz\u001b[m";
    expect(keepColours(coloured)).toBe(coloured);
  });

  it("drops a title, the clipboard, hyperlinks, cursor movement, screen clears and device controls", () => {
    expect(keepColours("a\u001b]0;pwned\u0007b")).toBe("ab");
    expect(keepColours("a\u001b]52;c;cm0gLXJmIH4=\u001b\\b")).toBe("ab");
    expect(keepColours("\u001b]8;;https://evil.test\u001b\\link\u001b]8;;\u001b\\")).toBe("link");
    expect(keepColours("ok\u001b[1A\u001b[2K\u001b[10;1Hfake\u001b[2J")).toBe("okfake");
    expect(keepColours('a\u001bP$q"p\u001b\\b\u001b_apc\u001b\\c')).toBe("abc");
    expect(keepColours("a\u009b2Jb\u009d0;t\u009cc\u0008\u0007d")).toBe("abcd");
    expect(keepColours("a\u001b7\u001b8\u001bcb")).toBe("ab");
  });
});

describe("TerminalOutput", () => {
  it("judges a sequence split across chunks whole: a title is dropped, a colour kept", () => {
    const output = new TerminalOutput();
    const printed = ["a\u001b]0;pw", "ned\u0007b\u001b[3", "1mred\u001b", "[0m"].map((chunk) =>
      output.push(chunk),
    );
    expect(printed.join("") + output.end()).toBe("ab\u001b[31mred\u001b[0m");
  });

  it("drops an unfinished sequence left at the end", () => {
    const output = new TerminalOutput();
    expect(output.push("done\u001b]0;tit") + output.end()).toBe("done0;tit");
  });
});

describe("terminal-safe output against what a member's step prints", () => {
  const through = (chunks: string[]) => {
    const output = new TerminalOutput();
    return chunks.map((chunk) => output.push(chunk)).join("") + output.end();
  };
  const acting = /[\u001b\u0080-\u009f\u0007]/;

  it("drops 8-bit C1 sequences, split ones, OSC 52 and hyperlinks, and what JSON.stringify leaves raw", () => {
    const attacks = [
      ["\u009b2J\u009d0;title\u009c", "x"],
      ["\u001b", "]52;c;aGk=\u0007after"],
      ["\u001b]8;;http://evil/\u001b", "\\link\u001b]8;;\u001b\\"],
      [JSON.stringify({ data: "\u009b2J\u009d0;pwned\u0007" })],
      [`\u001b]0;${"t".repeat(5000)}`, "\u0007rest"],
      ["\u0090q\u001b", "\\", "\u009b", "?1049h"],
    ];
    for (const chunks of attacks) {
      const shown = through(chunks);
      expect(shown, JSON.stringify(chunks).slice(0, 80)).not.toMatch(acting);
    }
  });
});
