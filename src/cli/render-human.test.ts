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

  it("writes characters beyond ASCII as UTF-8, and U+FFFD (a byte that was not UTF-8) as such", () => {
    const chunks: Buffer[] = [];
    const out = new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(chunk);
        done();
      },
    });
    const renderer = new HumanRenderer(out, false);
    const line = "é € 😀 \ufffd 中文";
    renderer.render(output(`${line}\n`.repeat(5_000), 1));
    renderer.render(output(`${line.slice(0, 5)}`, 2));
    renderer.render(output(`${line.slice(5)}\n`, 3));
    expect(Buffer.concat(chunks).toString("utf8")).toBe(`web1 | ${line}\n`.repeat(5_001));
  });

  it("never writes over the bytes of an earlier write, which a stream may keep as they were given", () => {
    const kept: Buffer[] = [];
    // A stream that keeps every chunk as it is (as a PassThrough does until it is read).
    const out = new Writable({
      write(chunk: Buffer, _encoding, done) {
        kept.push(chunk);
        done();
      },
    });
    const renderer = new HumanRenderer(out, false);
    renderer.render(output("first\n", 1));
    renderer.render(output("second\n", 2));
    expect(kept.map(String)).toEqual(["web1 | first\n", "web1 | second\n"]);
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

function event(seq: number, fields: Record<string, unknown>): RunEvent {
  return { run_id: "run_1", seq, ts: new Date(0).toISOString(), ...fields } as RunEvent;
}

describe("HumanRenderer with steps at once", () => {
  const started = (seq: number, step: string) =>
    event(seq, { type: "step.started", step, host: "local", attempt: 1 });
  const chunk = (seq: number, step: string, data: string, stream = "stdout") =>
    event(seq, { type: "step.output", step, host: "local", stream, data });
  const ended = (seq: number, step: string) =>
    event(seq, {
      type: "step.finished",
      step,
      host: "local",
      status: "success",
      exit_code: 0,
      attempts: 1,
      duration_ms: 10,
    });

  it("never prints one step's text inside another's line, and names the step of each line", () => {
    const { out, writes } = terminal();
    const renderer = new HumanRenderer(out, false);
    renderer.render(started(1, "a"));
    renderer.render(started(2, "b"));
    renderer.render(chunk(3, "a", "alpha be"));
    renderer.render(chunk(4, "b", "bravo on"));
    renderer.render(chunk(5, "a", "gins\nalpha two\n"));
    renderer.render(chunk(6, "b", "e\n"));
    const text = writes.join("");
    expect(text).toContain("a [local] | alpha begins\na [local] | alpha two\n");
    expect(text).toContain("b [local] | bravo one\n");
  });

  it("prints a step named with `$` as it is named on every line", () => {
    const { out, writes } = terminal();
    const renderer = new HumanRenderer(out, false);
    renderer.render(started(1, "pay $& $$ $1"));
    renderer.render(started(2, "b"));
    renderer.render(chunk(3, "pay $& $$ $1", "one\ntwo\n"));
    expect(writes.join("")).toContain("pay $& $$ $1 [local] | one\npay $& $$ $1 [local] | two\n");
  });

  it("keeps stdout and stderr of one step apart until each line ends", () => {
    const { out, writes } = terminal();
    const renderer = new HumanRenderer(out, false);
    renderer.render(started(1, "a"));
    renderer.render(chunk(2, "a", "out "));
    renderer.render(chunk(3, "a", "err line\n", "stderr"));
    renderer.render(chunk(4, "a", "line\n"));
    expect(writes.join("")).toContain("local | err line\nlocal | out line\n");
  });

  it("prints a step's unended last line when the step ends, before its end line", () => {
    const { out, writes } = terminal();
    const renderer = new HumanRenderer(out, false);
    renderer.render(started(1, "a"));
    renderer.render(started(2, "b"));
    renderer.render(chunk(3, "a", "no newline"));
    renderer.render(chunk(4, "b", "half"));
    renderer.render(ended(5, "a"));
    const text = writes.join("");
    expect(text).toMatch(/a \[local\] \| no newline\n✔ a \[local\] success/);
    expect(text).not.toContain("half");
  });
});
