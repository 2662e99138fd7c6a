/**
 * One job of a conversation at a time on this runner. A conversation's turns share its state
 * folder (the agent's sessions, the config the runner lays anew before each turn) and its
 * worktree or chat folder; a turn may write anything there. Two follow-ups of one finished run
 * would otherwise run side by side, one turn's processes changing the folders while the runner
 * lays the other's config by path.
 */
export class ConversationQueue {
  /** Per conversation, the promise that settles when its last queued job has ended. */
  private readonly tails = new Map<string, Promise<void>>();

  /**
   * Waits until every earlier job of `key` has ended (calling `waiting` first when one has not),
   * then returns the release to call when this job ends; `undefined` when `signal` aborts first.
   * A job that gave up waiting still holds its place, so later ones never overtake the one it
   * waited for.
   */
  async enter(key: string, signal: AbortSignal, waiting: () => void): Promise<(() => void) | undefined> {
    const before = this.tails.get(key);
    let ended = () => {};
    const tail = new Promise<void>((resolve) => {
      ended = resolve;
    }).then(() => before);
    this.tails.set(key, tail);
    // Forgotten once it and every job before it have ended, unless a later job queued behind it:
    // at once when the job leaves after those before it ended, else when they end.
    const forget = () => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
    void tail.then(forget);
    const leave = () => {
      ended();
      forget();
    };
    if (!before) return leave;
    waiting();
    if (await untilAborted(before, signal)) return leave;
    ended();
    return undefined;
  }
}

/** True when `promise` settles first, false when `signal` aborts first (or had). */
function untilAborted(promise: Promise<void>, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => resolve(false);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    });
  });
}
