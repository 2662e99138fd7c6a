import { type KeyboardEvent, type PointerEvent, useState } from "react";

/**
 * The point of a chart a user reads: under the pointer, or, with the chart focused, the last one
 * first and then moved by the arrow keys (Home and End for the ends). The chart shows the value of
 * `index` in a live region, so a screen reader says it too.
 */
export function useChartPoint(count: number, indexAt: (fraction: number) => number) {
  const [index, setIndex] = useState<number | null>(null);
  const clamp = (i: number) => Math.min(Math.max(i, 0), count - 1);
  const shown = index === null || count === 0 ? null : clamp(index);
  const handlers = {
    tabIndex: 0,
    onFocus: () => setIndex((i) => (i === null ? count - 1 : i)),
    onBlur: () => setIndex(null),
    onPointerMove: (event: PointerEvent<HTMLElement>) => {
      const box = event.currentTarget.getBoundingClientRect();
      if (box.width > 0) setIndex(clamp(indexAt((event.clientX - box.left) / box.width)));
    },
    onPointerLeave: (event: PointerEvent<HTMLElement>) => {
      if (document.activeElement !== event.currentTarget) setIndex(null);
    },
    onKeyDown: (event: KeyboardEvent<HTMLElement>) => {
      const move = keyMove(event.key, count);
      if (!move || count === 0) return;
      event.preventDefault();
      setIndex((i) => clamp(move(i ?? count - 1)));
    },
  };
  return { index: shown, handlers };
}

/** Where a key moves the point: left and down back, right and up on, Home and End to the ends. */
function keyMove(key: string, count: number): ((index: number) => number) | undefined {
  switch (key) {
    case "ArrowLeft":
    case "ArrowDown":
      return (i) => i - 1;
    case "ArrowRight":
    case "ArrowUp":
      return (i) => i + 1;
    case "Home":
      return () => 0;
    case "End":
      return () => count - 1;
    default:
      return undefined;
  }
}
