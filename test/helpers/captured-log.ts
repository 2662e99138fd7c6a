import { type Logger, pino } from "pino";

/** A logger whose messages a test reads (`lines`) and waits for (`logged`: once one contains `text`). */
export function capturedLog(): { logger: Logger; lines: string[]; logged: (text: string) => Promise<void> } {
  const lines: string[] = [];
  const waiters: Array<{ text: string; resolve: () => void }> = [];
  const logger = pino(
    { level: "debug" },
    {
      write: (line: string) => {
        const { msg } = JSON.parse(line) as { msg: string };
        lines.push(msg);
        for (const waiter of waiters) if (msg.includes(waiter.text)) waiter.resolve();
      },
    },
  );
  const logged = (text: string): Promise<void> =>
    lines.some((line) => line.includes(text))
      ? Promise.resolve()
      : new Promise((resolve) => waiters.push({ text, resolve }));
  return { logger, lines, logged };
}
