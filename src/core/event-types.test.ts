import { describe, expect, it } from "vitest";
import { runEventTypes } from "./event-types.js";
import { RunEvent } from "./events.js";

describe("the zod-free lists the web UI imports", () => {
  it("names every type of the RunEvent union once, and nothing else", () => {
    const unionTypes = RunEvent.options.map((schema) => schema.shape.type.value);
    expect([...runEventTypes].sort()).toEqual([...unionTypes].sort());
    expect(new Set(runEventTypes).size).toBe(runEventTypes.length);
  });
});
