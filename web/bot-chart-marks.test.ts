import { describe, expect, it } from "vitest";

interface Sample {
  at: string;
  cpu_percent: number;
  memory_bytes: number;
  memory_limit_bytes: number | null;
  net_rx_bytes: number;
  net_tx_bytes: number;
  pids: number;
  restarts: number;
}
interface Version {
  version: number;
  state: string;
  reason: string;
  run_id: null;
  image: null;
  summary: Record<string, unknown>;
  error: null;
  created_by: null;
  created_at: string;
  finished_at: string | null;
}
interface Episode {
  id: string;
  kind: string;
  message: string;
  started_at: string;
  ended_at: string | null;
  notified_at: string | null;
  notify_error: string | null;
}
interface MarksModule {
  botChartMarks(
    samples: Sample[],
    versions: Version[],
    episodes: Episode[],
  ): { kind: string; at: number; short: string; text: string }[];
}
// Loaded by a path the server's type check does not follow: the module's types come from the
// browser's API client, whose globals (sessionStorage, window) the server's code must not see.
// web/tsconfig.json checks the module itself.
const load = (path: string): Promise<unknown> => import(/* @vite-ignore */ path);
const { botChartMarks } = (await load("./src/pages/bots/bot-chart-marks.js")) as MarksModule;

const sample = (at: string, restarts: number): Sample => ({
  at,
  cpu_percent: 1,
  memory_bytes: 1024,
  memory_limit_bytes: null,
  net_rx_bytes: 0,
  net_tx_bytes: 0,
  pids: 1,
  restarts,
});

const version = (n: number, reason: string, state: string, finished: string | null): Version => ({
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
