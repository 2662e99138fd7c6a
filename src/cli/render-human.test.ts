import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import type { RunEvent } from "../core/events.js";
import { HumanRenderer } from "./render-human.js";

/** A terminal stand-in that keeps each write apart, as each is a system call on a real one. */
function terminal(): { out: Writable; writes: string[] } {
  const writes: string[] = [];
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      writes.push(String(chunk));
      done();
    },
  });
  return { out, writes };
}

function output(data: string, seq: number): RunEvent {
  return {
    run_id: "run_1",
    seq,
    ts: new Date(0).toISOString(),
    type: "step.output",
    step: "build",
    host: "web1",
    stream: "stdout",
    data,
  };
}

describe("HumanRenderer step output", () => {
  it("prints a chunk of 10,000 lines in one write, every line prefixed by its host", () => {
    const { out, writes } = terminal();
    const renderer = new HumanRenderer(out, false);
    const lines = Array.from({ length: 10_000 }, (_, i) => `line ${i}`);
    renderer.render(output(`${lines.join("\n")}\n`, 1));
    expect(writes).toHaveLength(1);
    expect(writes[0]).toBe(lines.map((line) => `web1 | ${line}\n`).join(""));
  });

  it("holds a line split across chunks until its end arrives", () => {
    const { out, writes } = terminal();
    const renderer = new HumanRenderer(out, false);
    renderer.render(output("first\nsec", 1));
    renderer.render(output("ond ", 2));
    renderer.render(output("half\nthird\n", 3));
    expect(writes.join("")).toBe("web1 | first\nweb1 | second half\nweb1 | third\n");
  });
});
