import { describe, expect, it } from "vitest";
import { demultiplex, type LogLine } from "./docker-log-frames.js";

function frame(stream: 1 | 2, text: string | Buffer): Buffer {
  const payload = typeof text === "string" ? Buffer.from(text, "utf8") : text;
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

async function lines(chunks: Buffer[]): Promise<LogLine[]> {
  const all: LogLine[] = [];
  for await (const line of demultiplex(chunks)) all.push(line);
  return all;
}

describe("demultiplex", () => {
  it("splits frames into lines per stream, keeping a line that spans frames whole", async () => {
    const data = [frame(1, "hel"), frame(2, "err 1\n"), frame(1, "lo\nworld\n"), frame(1, "no newline")];
    expect(await lines(data)).toEqual([
      { stream: "stderr", line: "err 1" },
      { stream: "stdout", line: "hello" },
      { stream: "stdout", line: "world" },
      { stream: "stdout", line: "no newline" },
    ]);
  });

  it("joins a multi-byte character that a program wrote in two halves", async () => {
    const check = Buffer.from("✓\n", "utf8");
    const halves = [frame(1, check.subarray(0, 2)), frame(2, "between\n"), frame(1, check.subarray(2))];
    expect(await lines(halves)).toEqual([
      { stream: "stderr", line: "between" },
      { stream: "stdout", line: "✓" },
    ]);
  });

  it("reads frames whose header and payload arrive cut anywhere, multi-byte characters included", async () => {
    const whole = Buffer.concat([frame(1, "héllo\n"), frame(2, "wörld\n"), frame(1, "✓ done\n")]);
    for (let cut = 1; cut < whole.length; cut += 1) {
      const chunks = [whole.subarray(0, cut), whole.subarray(cut, cut + 3), whole.subarray(cut + 3)];
      expect(await lines(chunks)).toEqual([
        { stream: "stdout", line: "héllo" },
        { stream: "stderr", line: "wörld" },
        { stream: "stdout", line: "✓ done" },
      ]);
    }
  });
});
