/**
 * The slowest `/health` answer of a server while `during` runs, probed every 20 ms. A test compares
 * it with the same probe over a quiet stretch as long, so that a busy machine does not fail it
 * while a server whose event loop is held does.
 */
export async function slowestHealthWhile(url: string, during: () => Promise<void>): Promise<number> {
  let worst = 0;
  let done = false;
  const probe = (async () => {
    while (!done) {
      const started = performance.now();
      await fetch(`${url}/health`);
      worst = Math.max(worst, performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  try {
    await during();
  } finally {
    done = true;
    await probe;
  }
  return worst;
}

/** `slowestHealthWhile` over `ms` of nothing: the quiet baseline to compare with. */
export function slowestHealthQuiet(url: string, ms: number): Promise<number> {
  return slowestHealthWhile(url, () => new Promise((resolve) => setTimeout(resolve, ms)));
}
