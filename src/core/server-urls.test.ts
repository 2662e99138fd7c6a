import { describe, expect, it } from "vitest";
import { RunyardError } from "./errors.js";
import { parseServerUrls } from "./server-urls.js";

function usageError(list: string): RunyardError {
  try {
    parseServerUrls(list);
  } catch (error) {
    if (error instanceof RunyardError) return error;
    throw error;
  }
  throw new Error(`"${list}" was accepted`);
}

describe("parseServerUrls", () => {
  it("reads one URL as a list of one", () => {
    expect(parseServerUrls("http://127.0.0.1:8088")).toEqual(["http://127.0.0.1:8088"]);
  });

  it("reads several URLs in the order given", () => {
    expect(parseServerUrls("http://a:8088,https://b.example.com,http://10.0.0.3:9000/")).toEqual([
      "http://a:8088",
      "https://b.example.com",
      "http://10.0.0.3:9000/",
    ]);
  });

  it("trims spaces around each URL", () => {
    expect(parseServerUrls("  http://a:8088 ,\thttp://b:8088  ")).toEqual(["http://a:8088", "http://b:8088"]);
  });

  it("ignores empty items, and reads an empty or blank list as no server", () => {
    expect(parseServerUrls(",http://a:8088,, ,http://b:8088,")).toEqual(["http://a:8088", "http://b:8088"]);
    expect(parseServerUrls("")).toEqual([]);
    expect(parseServerUrls(" , ")).toEqual([]);
  });

  it("accepts the scheme in any case", () => {
    expect(parseServerUrls("HTTP://a:8088,Https://b")).toEqual(["HTTP://a:8088", "Https://b"]);
  });

  it("refuses an item without a scheme, naming it and suggesting http://", () => {
    const error = usageError("http://a:8088, b:8088");
    expect(error.code).toBe("USAGE");
    expect(error.message).toBe('"b:8088" is not a server URL');
    expect(error.hint).toMatch(/^Did you mean http:\/\/b:8088\?/);
    expect(error.hint).toContain("http://a:8088,http://b:8088");
  });

  it("refuses another scheme, naming the item", () => {
    const error = usageError("ws://a:8088");
    expect(error.message).toBe('"ws://a:8088" is not a server URL');
    expect(error.hint).toMatch(/^A server URL starts with http:\/\/ or https:\/\//);
  });

  it("refuses an http item that is not a URL", () => {
    expect(usageError("http://a:8088,http://").message).toBe('"http://" is not a server URL');
    expect(usageError("http://a b:8088").message).toBe('"http://a b:8088" is not a server URL');
    expect(usageError("http://a:99999").message).toBe('"http://a:99999" is not a server URL');
  });

  it("refuses a list that is one URL with spaces where commas belong", () => {
    expect(usageError("http://a:8088 http://b:8088").code).toBe("USAGE");
  });
});
