import { describe, expect, it } from "vitest";
import { botChartMarks } from "./src/pages/bots/bot-chart-marks.js";

type Args = Parameters<typeof botChartMarks>;

const sample = (at: string, restarts: number): Args[0][number] => ({
  at,
  cpu_percent: 1,
  memory_bytes: 1024,
  memory_limit_bytes: null,
  net_rx_bytes: 0,
  net_tx_bytes: 0,
  pids: 1,
  restarts,
});

const version = (
  n: number,
  reason: Args[1][number]["reason"],
  state: Args[1][number]["state"],
  finished: string | null,
): Args[1][number] => ({
  version: n,
  state,
  reason,
  run_id: null,
  image: null,
  summary: {},
  error: null,
  created_by: null,
  created_at: "2026-11-29T10:00:00.000Z",
  finished_at: finished,
});

const samples = [
  sample("2026-11-29T10:00:00.000Z", 0),
  sample("2026-11-29T10:01:00.000Z", 0),
  sample("2026-11-29T10:02:00.000Z", 2),
  sample("2026-11-29T10:03:00.000Z", 0),
];

describe("botChartMarks", () => {
  it("marks versions that went live or failed after the first, restarts and alerts, oldest first", () => {
    const marks = botChartMarks(
      samples,
      [
        version(3, "update", "failed", "2026-11-29T10:02:30.000Z"),
        version(2, "update", "live", "2026-11-29T10:00:30.000Z"),
        version(1, "start", "replaced", "2026-11-29T09:59:00.000Z"),
      ],
      [
        {
          id: "a1",
          kind: "memory",
          message: "over",
          started_at: "2026-11-29T10:01:30.000Z",
          ended_at: null,
          notified_at: null,
          notify_error: null,
        },
      ],
    );
    expect(marks.map((mark) => [mark.kind, mark.short, mark.text])).toEqual([
      ["version", "v2", "version 2 (update)"],
      ["alert", "alert", "alert: memory"],
      ["restart", "restart", "restarted 2 times"],
      ["version", "v3 ✗", "version 3 (update, failed)"],
    ]);
  });

  it("leaves out what happened outside the samples' span, and a count that fell with a new life", () => {
    const marks = botChartMarks(samples, [version(2, "env", "live", "2026-11-29T11:00:00.000Z")], []);
    expect(marks.map((mark) => mark.kind)).toEqual(["restart"]);
    expect(botChartMarks([], [version(2, "env", "live", "2026-11-29T10:00:30.000Z")], [])).toEqual([]);
  });
});
