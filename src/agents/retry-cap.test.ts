import { describe, expect, it } from "vitest";
import { RetryCap } from "./retry-cap.js";

describe("RetryCap", () => {
  it("ends a turn after retries + 1 failed attempts of one call", () => {
    const cap = new RetryCap(2);
    cap.attemptFailed("AGENT_RATE_LIMIT", "the model API failed with HTTP 429");
    cap.attemptFailed("AGENT_RATE_LIMIT", "the model API failed with HTTP 429");
    expect(cap.exceeded).toBeUndefined();
    cap.attemptFailed("AGENT_RATE_LIMIT", "the model API failed with HTTP 429");
    expect(cap.exceeded).toMatchObject({
      code: "AGENT_RATE_LIMIT",
      message: expect.stringContaining("3 attempts"),
    });
  });

  it("counts again after a call that got through", () => {
    const cap = new RetryCap(1);
    cap.attemptFailed("AGENT_UNAVAILABLE", "the model API failed with HTTP 500");
    cap.callSucceeded();
    cap.attemptFailed("AGENT_UNAVAILABLE", "the model API failed with HTTP 500");
    expect(cap.exceeded).toBeUndefined();
  });

  it("ends a turn at the first refused key, whatever llm_retry_count allows", () => {
    const cap = new RetryCap(5);
    cap.attemptFailed("AGENT_AUTH", "the model API failed with HTTP 401");
    expect(cap.exceeded).toMatchObject({
      code: "AGENT_AUTH",
      message: "the model API failed with HTTP 401 (a refused key is not retried)",
    });
  });
});
