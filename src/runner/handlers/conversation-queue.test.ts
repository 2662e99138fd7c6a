import { describe, expect, it } from "vitest";
import { ConversationQueue } from "./conversation-queue.js";

const never = new AbortController().signal;

describe("one job of a conversation at a time", () => {
  it("lets the first in at once, the next when the first leaves, told that it waits", async () => {
    const queue = new ConversationQueue();
    const waited: string[] = [];
    const first = await queue.enter("c-openai", never, () => waited.push("first"));
    expect(first).toBeDefined();
    let secondIn = false;
    const second = queue
      .enter("c-openai", never, () => waited.push("second"))
      .then((leave) => {
        secondIn = true;
        return leave;
      });
    await Promise.resolve();
    expect(waited).toEqual(["second"]);
    expect(secondIn).toBe(false);
    first?.();
    const leave = await second;
    expect(leave).toBeDefined();
    leave?.();
  });

  it("never holds one conversation up for another", async () => {
    const queue = new ConversationQueue();
    const one = await queue.enter("a-openai", never, () => {});
    const other = await queue.enter("b-openai", never, () => {
      throw new Error("b waited for a");
    });
    expect(other).toBeDefined();
    one?.();
    other?.();
  });

  it("a job canceled while it waits gives up its place without letting a later one overtake the running one", async () => {
    const queue = new ConversationQueue();
    const running = await queue.enter("c-openai", never, () => {});
    const cancel = new AbortController();
    const canceled = queue.enter("c-openai", cancel.signal, () => {});
    let laterIn = false;
    const later = queue
      .enter("c-openai", never, () => {})
      .then((leave) => {
        laterIn = true;
        return leave;
      });
    cancel.abort();
    expect(await canceled).toBeUndefined();
    // A job that comes now still queues behind the running one.
    let lastWaited = false;
    const last = queue.enter("c-openai", never, () => {
      lastWaited = true;
    });
    expect(lastWaited).toBe(true);
    await Promise.resolve();
    expect(laterIn).toBe(false);
    running?.();
    (await later)?.();
    (await last)?.();
  });

  it("a job whose run was canceled before it came never enters behind a running one", async () => {
    const queue = new ConversationQueue();
    const running = await queue.enter("c-openai", never, () => {});
    const cancel = new AbortController();
    cancel.abort();
    expect(await queue.enter("c-openai", cancel.signal, () => {})).toBeUndefined();
    running?.();
  });

  it("forgets a conversation once its jobs have ended: the next enters without waiting", async () => {
    const queue = new ConversationQueue();
    (await queue.enter("c-openai", never, () => {}))?.();
    const cancel = new AbortController();
    const held = await queue.enter("c-openai", never, () => {
      throw new Error("waited for a job that had ended");
    });
    const gaveUp = queue.enter("c-openai", cancel.signal, () => {});
    cancel.abort();
    await gaveUp;
    held?.();
    // Its chain settles on a later tick.
    await new Promise((resolve) => setImmediate(resolve));
    expect(
      await queue.enter("c-openai", never, () => {
        throw new Error("waited for jobs that had ended");
      }),
    ).toBeDefined();
  });
});
