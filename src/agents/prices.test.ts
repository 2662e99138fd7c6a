import { describe, expect, it } from "vitest";
import { costFor } from "./prices.js";

describe("costFor", () => {
  it("prices input and output tokens per million at the model's list price", () => {
    expect(costFor("claude-sonnet-4-5-20250929", 1_000_000, 1_000_000)).toBeCloseTo(18);
    expect(costFor("gpt-4.1", 500_000, 250_000)).toBeCloseTo(3);
  });

  it("takes the longest matching prefix, so a mini model is not priced as its big sibling", () => {
    expect(costFor("gpt-4o-mini", 1_000_000, 0)).toBeCloseTo(0.15);
    expect(costFor("gpt-4o-2024-08-06", 1_000_000, 0)).toBeCloseTo(2.5);
    expect(costFor("o4-mini", 0, 1_000_000)).toBeCloseTo(4.4);
    expect(costFor("gemini-2.5-flash-lite", 1_000_000, 0)).toBeCloseTo(0.1);
    expect(costFor("claude-opus-4-1-20250805", 1_000_000, 0)).toBeCloseTo(15);
    expect(costFor("claude-opus-4-5", 1_000_000, 0)).toBeCloseTo(5);
  });

  it("reads names with a provider in front and any case", () => {
    expect(costFor("openai/GPT-5-codex", 1_000_000, 0)).toBeCloseTo(1.25);
    expect(costFor("models/gemini-2.5-pro", 0, 1_000_000)).toBeCloseTo(10);
  });

  it("knows nothing of models outside its table", () => {
    expect(costFor("llama-3-70b", 1000, 1000)).toBeUndefined();
    expect(costFor("", 1000, 1000)).toBeUndefined();
  });
});
