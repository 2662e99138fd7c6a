import { describe, expect, it } from "vitest";
import { linkOpen, runnerLinkPair } from "./runner-link.js";

type End = ReturnType<typeof runnerLinkPair>["runner"];

/** Resolves when the end has seen its close. */
const closed = (end: End): Promise<void> => new Promise((resolve) => end.on("close", () => resolve()));

/** What an end heard, in order: its messages, then its close. */
function heard(end: End): string[] {
  const said: string[] = [];
  end.on("message", (data) => said.push(String(data)));
  end.on("close", (code, reason) => said.push(`close ${code} ${String(reason)}`));
  return said;
}

describe("an in-process runner link", () => {
  it("delivers each side's messages in order on a later turn, and calls back once delivered", async () => {
    const { runner, server } = runnerLinkPair(1024);
    const atServer = heard(server);
    const atRunner = heard(runner);
    const delivered: string[] = [];
    runner.send("one", () => delivered.push("one"));
    runner.send("two", () => delivered.push("two"));
    server.send("welcome");
    // Not within the turn that sent them: as a socket, a message never arrives inside its send.
    expect(atServer).toEqual([]);
    expect(atRunner).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(atServer).toEqual(["one", "two"]);
    expect(atRunner).toEqual(["welcome"]);
    expect(delivered).toEqual(["one", "two"]);
  });

  it("closes both ends with the closer's code and reason, after what was sent before the close", async () => {
    const { runner, server } = runnerLinkPair(1024);
    const atServer = heard(server);
    const atRunner = heard(runner);
    runner.send("last batch");
    server.send("ack");
    server.close(4001, "runner token revoked");
    expect(server.readyState).not.toBe(linkOpen);
    expect(runner.readyState).not.toBe(linkOpen);
    // Nothing is sent once the close was asked; the sender is told.
    const refused = await new Promise<Error | undefined>((resolve) => runner.send("late", resolve));
    expect(refused?.message).toBe("the link is closed");
    await Promise.all([closed(server), closed(runner)]);
    expect(atServer).toEqual(["last batch", "close 4001 runner token revoked"]);
    expect(atRunner).toEqual(["ack", "close 4001 runner token revoked"]);
  });

  it("drops what was not delivered on terminate, and both ends see 1006", async () => {
    const { runner, server } = runnerLinkPair(1024);
    const atServer = heard(server);
    const atRunner = heard(runner);
    const cut = new Promise<Error | undefined>((resolve) => runner.send("never read", resolve));
    runner.terminate();
    expect((await cut)?.message).toBe("the link was cut");
    await Promise.all([closed(server), closed(runner)]);
    expect(atServer).toEqual(["close 1006 "]);
    expect(atRunner).toEqual(["close 1006 "]);
  });

  it("tells each end of the link's end once, when one is cut after the other has seen the close", async () => {
    const { runner, server } = runnerLinkPair(1024);
    const atServer = heard(server);
    const atRunner = heard(runner);
    // As the runner's heartbeat would, giving up on a silent server while the close is on its way.
    server.on("close", () => runner.terminate());
    server.close(4001, "runner token revoked");
    await closed(runner);
    // One turn more: a second close of the server's end would come on it.
    await new Promise((resolve) => setImmediate(resolve));
    expect(atServer).toEqual(["close 4001 runner token revoked"]);
    expect(atRunner).toEqual(["close 1006 "]);
  });

  it("closes with 1009 on a message past what the server takes, counted in UTF-8 bytes, without reading it", async () => {
    const { runner, server } = runnerLinkPair(10);
    const atServer = heard(server);
    heard(runner);
    runner.send("0123456789");
    // Ten characters, but 20 bytes: past the server's 10.
    runner.send("éééééééééé");
    await closed(server);
    expect(atServer).toEqual(["0123456789", "close 1009 Max payload size exceeded"]);
  });
});
