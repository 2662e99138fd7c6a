import { describe, expect, it } from "vitest";
import { ExportLineReader, MAX_EXPORT_VALUE_BYTES, parseOutputFile } from "./exports.js";

function readLines(...chunks: string[]): ExportLineReader {
  const reader = new ExportLineReader();
  for (const chunk of chunks) reader.push(chunk);
  reader.end();
  return reader;
}

describe("BOPS_EXPORT lines", () => {
  it("exports KEY=value lines and ignores other output", () => {
    const reader = readLines("building\nBOPS_EXPORT:VERSION=1.2.3\ndone\nBOPS_EXPORT:OK=true\n");
    expect(Object.fromEntries(reader.exports)).toEqual({ VERSION: "1.2.3", OK: "true" });
    expect(reader.warnings).toEqual([]);
  });

  it("joins a line split across chunks, even inside the prefix", () => {
    const reader = readLines("log\nBOPS_EX", "PORT:NA", "ME=val", "ue\nnext\n");
    expect(Object.fromEntries(reader.exports)).toEqual({ NAME: "value" });
  });

  it("keeps the value literally: shell syntax, = signs and spaces", () => {
    const reader = readLines("BOPS_EXPORT:CMD=$(touch /tmp/pwned) `id` a=b  \n");
    expect(reader.exports.get("CMD")).toBe("$(touch /tmp/pwned) `id` a=b  ");
  });

  it("drops a trailing carriage return", () => {
    expect(readLines("BOPS_EXPORT:A=1\r\n").exports.get("A")).toBe("1");
  });

  it("reads a last line without a newline", () => {
    expect(readLines("BOPS_EXPORT:A=1").exports.get("A")).toBe("1");
  });

  it("lets a later definition win", () => {
    expect(readLines("BOPS_EXPORT:A=1\nBOPS_EXPORT:A=2\n").exports.get("A")).toBe("2");
  });

  it("only reads the prefix at the start of a line", () => {
    const reader = readLines("echo BOPS_EXPORT:A=1\nxBOPS_EXPORT:B=2\n");
    expect(reader.exports.size).toBe(0);
  });

  it("ignores invalid names and lines without = with a warning", () => {
    const reader = readLines(
      "BOPS_EXPORT:1BAD=x\nBOPS_EXPORT:A-B=y\nBOPS_EXPORT:NOVALUE\nBOPS_EXPORT:GOOD=z\n",
    );
    expect(Object.fromEntries(reader.exports)).toEqual({ GOOD: "z" });
    expect(reader.warnings).toHaveLength(3);
    expect(reader.warnings[0]).toContain('"1BAD"');
    expect(reader.warnings[2]).toContain('without "="');
  });

  it("accepts an empty value", () => {
    expect(readLines("BOPS_EXPORT:EMPTY=\n").exports.get("EMPTY")).toBe("");
  });

  it("holds an export line back until it is read, and shows everything in order", () => {
    const heard: string[] = [];
    let shown = "";
    const reader = new ExportLineReader((name) => heard.push(`${name} heard after ${JSON.stringify(shown)}`));
    for (const chunk of ["log\nBOPS_EX", "PORT:NEW_TO", "KEN=abc", "def\nafter\nBOPS", "_x\nlast"]) {
      shown += reader.push(chunk);
    }
    shown += reader.end();
    expect(shown).toBe("log\nBOPS_EXPORT:NEW_TOKEN=abcdef\nafter\nBOPS_x\nlast");
    expect(heard).toEqual(['NEW_TOKEN heard after "log\\n"']);
  });

  it("does not hold back lines that cannot be export lines", () => {
    const reader = new ExportLineReader();
    expect(reader.push("plain output without a newline")).toBe("plain output without a newline");
    expect(reader.push(" and more\nBOPS")).toBe(" and more\n");
  });
});

describe("the $RUNYARD_OUTPUT file", () => {
  it("reads KEY=value lines", () => {
    const { exports, warnings } = parseOutputFile("A=1\nB=two words\n\nC=x=y\n");
    expect(Object.fromEntries(exports)).toEqual({ A: "1", B: "two words", C: "x=y" });
    expect(warnings).toEqual([]);
  });

  it("reads multi-line values between KEY<<DELIMITER and DELIMITER", () => {
    const { exports } = parseOutputFile("NOTES<<EOF\nline one\n\nline = three\nEOF\nAFTER=1\n");
    expect(Object.fromEntries(exports)).toEqual({ NOTES: "line one\n\nline = three", AFTER: "1" });
  });

  it("handles CRLF line ends", () => {
    const { exports } = parseOutputFile("A=1\r\nM<<END\r\nx\r\nEND\r\n");
    expect(Object.fromEntries(exports)).toEqual({ A: "1", M: "x" });
  });

  it("lets a later definition win", () => {
    expect(parseOutputFile("A=1\nA<<E\n2\nE\n").exports.get("A")).toBe("2");
  });

  it("warns about malformed lines by number without showing their text", () => {
    const { exports, warnings } = parseOutputFile("A=1\nthis is not an export s3cr3t\n2X=3\n");
    expect(Object.fromEntries(exports)).toEqual({ A: "1" });
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain("line 2");
    expect(warnings[0]).not.toContain("s3cr3t");
    expect(warnings[1]).toContain('"2X"');
  });

  it("warns about a multi-line value that is never closed and ignores it", () => {
    const { exports, warnings } = parseOutputFile("A=1\nM<<EOF\nnever\nclosed\n");
    expect(Object.fromEntries(exports)).toEqual({ A: "1" });
    expect(warnings[0]).toContain("line 2");
  });

  it("keeps a name like __proto__ as an ordinary key", () => {
    const exported = Object.fromEntries(parseOutputFile("__proto__=x\n").exports);
    expect(Object.keys(exported)).toEqual(["__proto__"]);
  });
});

describe("the 1 MiB cap of one exported value", () => {
  it("refuses a BOPS_EXPORT value over 1 MiB by name, without holding the line", () => {
    const reader = new ExportLineReader();
    reader.push("BOPS_EXPORT:SMALL=ok\nBOPS_EXPORT:HUGE=");
    const chunk = "v".repeat(64 * 1024);
    let held = 0;
    for (let sent = 0; sent < 50 * 1024 * 1024; sent += chunk.length) {
      reader.push(chunk);
      held = Math.max(held, reader.heldChars);
    }
    reader.push("\nBOPS_EXPORT:AFTER=1\n");
    reader.end();
    expect(held).toBeLessThan(MAX_EXPORT_VALUE_BYTES + 2 * chunk.length);
    expect(Object.fromEntries(reader.exports)).toEqual({ SMALL: "ok", AFTER: "1" });
    expect(reader.tooLarge).toEqual(["HUGE"]);
    expect(reader.warnings).toEqual([
      'BOPS_EXPORT: line: the value of "HUGE" is over the 1 MiB cap of one exported value',
    ]);
  });

  it("never shows an over-cap export line, streamed or in one piece: its value may be a secret", () => {
    const value = "s".repeat(MAX_EXPORT_VALUE_BYTES + 10);
    const streamed = new ExportLineReader();
    let shown = streamed.push("before\nBOPS_EXPORT:BIG_TOKEN=");
    for (let at = 0; at < value.length; at += 64 * 1024)
      shown += streamed.push(value.slice(at, at + 64 * 1024));
    shown += streamed.push("\nafter\n") + streamed.end();
    expect(shown).toBe("before\nafter\n");
    const whole = new ExportLineReader();
    expect(whole.push(`BOPS_EXPORT:BIG_TOKEN=${value}\nafter\n`) + whole.end()).toBe("after\n");
  });

  it("refuses a value over 1 MiB that arrives in one piece, and keeps one of exactly 1 MiB", () => {
    const exact = "x".repeat(MAX_EXPORT_VALUE_BYTES);
    const reader = readLines(`BOPS_EXPORT:EXACT=${exact}\nBOPS_EXPORT:OVER=${exact}é\n`);
    expect(reader.exports.get("EXACT")).toBe(exact);
    expect(reader.tooLarge).toEqual(["OVER"]);
  });

  it("refuses an over-long $RUNYARD_OUTPUT value by name and line", () => {
    const big = "y".repeat(MAX_EXPORT_VALUE_BYTES + 1);
    const { exports, tooLarge, warnings } = parseOutputFile(`A=1\nBIG=${big}\nDOC<<EOF\n${big}\nEOF\n`);
    expect(Object.fromEntries(exports)).toEqual({ A: "1" });
    expect(tooLarge).toEqual(["BIG", "DOC"]);
    expect(warnings).toEqual([
      '$RUNYARD_OUTPUT line 2: the value of "BIG" is over the 1 MiB cap of one exported value',
      '$RUNYARD_OUTPUT line 3: the value of "DOC" is over the 1 MiB cap of one exported value',
    ]);
  });
});
