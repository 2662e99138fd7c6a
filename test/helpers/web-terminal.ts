import type { Page } from "playwright-core";

/**
 * The run page's terminal as tests read it: the xterm Terminal the page hangs on its element
 * (`data-testid="terminal"`), line by line.
 */

/** What the tests read of the xterm Terminal the run page hangs on its element. */
export interface XtermLike {
  buffer: {
    active: {
      length: number;
      getLine(row: number):
        | {
            translateToString(trim: boolean): string;
            getCell(x: number): { getFgColor(): number } | undefined;
          }
        | undefined;
    };
  };
}

/** The lines the run page's terminal holds (its xterm buffer, read through its element). */
export function terminalLines(page: Page): Promise<string[]> {
  return page.getByTestId("terminal").evaluate((element) => {
    const term = (element as unknown as { terminal: XtermLike }).terminal;
    const buffer = term.buffer.active;
    const lines: string[] = [];
    for (let row = 0; row < buffer.length; row++)
      lines.push(buffer.getLine(row)?.translateToString(true) ?? "");
    return lines;
  });
}

/** Waits until the terminal holds a line equal to `line`. */
export async function terminalShows(page: Page, line: string, timeout = 30_000): Promise<void> {
  await page.getByTestId("terminal").waitFor();
  await page.waitForFunction(
    (wanted) => {
      const page = globalThis as unknown as {
        document: { querySelector(selector: string): { terminal?: XtermLike } | null };
      };
      const element = page.document.querySelector('[data-testid="terminal"]');
      const buffer = element?.terminal?.buffer.active;
      if (!buffer) return false;
      for (let row = buffer.length - 1; row >= 0; row--) {
        if (buffer.getLine(row)?.translateToString(true) === wanted) return true;
      }
      return false;
    },
    line,
    { timeout },
  );
}
