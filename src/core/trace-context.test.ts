import { describe, expect, it } from "vitest";
import { formatTraceparent, parseTraceparent, parseTracestate, traceEnv } from "./trace-context.js";

describe("W3C trace context", () => {
  const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

  it("reads a valid traceparent into its ids and sampled flag, and writes it back the same", () => {
    const parent = parseTraceparent(valid);
    expect(parent).toEqual({
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      sampled: true,
    });
    expect(formatTraceparent(parent!)).toBe(valid);
    expect(parseTraceparent(valid.replace(/01$/, "00"))?.sampled).toBe(false);
  });

  it("ignores what the spec says to ignore: zero ids, version ff, upper case, extra fields on version 00, bad lengths", () => {
    for (const bad of [
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      `${valid}-extra`,
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
      "not a header",
      "",
    ])
      expect(parseTraceparent(bad), bad).toBeUndefined();
  });

  it("reads a later version's header by its first four fields, as the spec asks", () => {
    expect(
      parseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes")?.spanId,
    ).toBe("00f067aa0ba902b7");
  });

  it("keeps a tracestate list and drops one that is not", () => {
    expect(parseTracestate("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE")).toBe(
      "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    );
    expect(parseTracestate("no equals sign")).toBeUndefined();
    expect(parseTracestate("a=1,".repeat(40))).toBeUndefined();
  });

  it("gives a traced step TRACEPARENT and TRACESTATE, and an untraced one nothing", () => {
    expect(traceEnv({ traceparent: valid, tracestate: "a=1" })).toEqual({
      TRACEPARENT: valid,
      TRACESTATE: "a=1",
    });
    expect(traceEnv(undefined)).toEqual({});
  });
});
