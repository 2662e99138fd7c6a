import type { AnswerOf } from "../../api.js";

type Sample = AnswerOf<"getBotStats">["samples"][number];
type Version = AnswerOf<"listBotVersions">["versions"][number];
type Episode = AnswerOf<"getBotAlerts">["episodes"][number];

/** What happened to a bot at a moment of its resource charts. */
export interface BotChartMark {
  kind: "version" | "restart" | "alert";
  at: number;
  /** Short, drawn over the mark: `v2`, `restart`, `alert`. */
  short: string;
  /** Said in the legend and the readout: `version 2 (update)`. */
  text: string;
}

/**
 * The moments the charts mark, from what the bot page reads anyway: a version that went live (or
 * failed) after the first, a restart (a sample's restart count above the one before), an alert's
 * start. Only those within the samples' span, oldest first.
 */
export function botChartMarks(samples: Sample[], versions: Version[], episodes: Episode[]): BotChartMark[] {
  if (samples.length === 0) return [];
  const first = Date.parse(samples[0]!.at);
  const last = Date.parse(samples.at(-1)!.at);
  const marks: BotChartMark[] = [];
  for (const version of versions) {
    if (version.reason === "start" || version.state === "starting") continue;
    const failed = version.state === "failed";
    marks.push({
      kind: "version",
      at: Date.parse(version.finished_at ?? version.created_at),
      short: `v${version.version}${failed ? " ✗" : ""}`,
      text: `version ${version.version} (${version.reason}${failed ? ", failed" : ""})`,
    });
  }
  samples.forEach((sample, i) => {
    const before = samples[i - 1];
    if (before && sample.restarts > before.restarts) {
      const count = sample.restarts - before.restarts;
      marks.push({
        kind: "restart",
        at: Date.parse(sample.at),
        short: "restart",
        text: count === 1 ? "restarted" : `restarted ${count} times`,
      });
    }
  });
  for (const episode of episodes) {
    marks.push({
      kind: "alert",
      at: Date.parse(episode.started_at),
      short: "alert",
      text: `alert: ${episode.kind}`,
    });
  }
  return marks.filter((mark) => mark.at >= first && mark.at <= last).sort((a, b) => a.at - b.at);
}
