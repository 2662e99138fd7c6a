import { useState } from "react";
import { answer, api } from "../../api.js";
import { referenceInView } from "../../charts/scale.js";
import { formatDate } from "../../dates.js";
import { ErrorNote } from "../agents/error-note.js";
import { botChartMarks } from "./bot-chart-marks.js";
import { BotLineChart, type LineUnit } from "./bot-line-chart.js";
import { cpu, memory } from "./bot-view.js";
import { usePoll } from "./use-poll.js";

/** The spans the chart offers; the server picks the resolution (5 s, 1 min, 10 min). */
const spans = ["1h", "24h", "7d"] as const;
type Span = (typeof spans)[number];

/**
 * A bot's memory (against its limit) and CPU over the last hour, day or week, as two line charts
 * (GET /api/bots/:name/stats) on axes scaled to the data, refreshed every 10 s, with the moments
 * the bot changed version, restarted or raised an alert marked on both.
 */
export function BotResourceChart(props: { name: string }) {
  const [span, setSpan] = useState<Span>("1h");
  return (
    <section className="section bot-resources" aria-labelledby="bot-resources">
      <h2 id="bot-resources">Resources</h2>
      <fieldset className="bot-span">
        <legend>Over the last</legend>
        {spans.map((choice) => (
          <button key={choice} type="button" aria-pressed={span === choice} onClick={() => setSpan(choice)}>
            {choice}
          </button>
        ))}
      </fieldset>
      <ResourceCharts key={span} name={props.name} span={span} />
    </section>
  );
}

/** The charts of one span: a new span is a new poll (keyed), so an old answer never shows late. */
function ResourceCharts(props: { name: string; span: Span }) {
  const params = { path: { name: props.name } };
  const { data, error } = usePoll(
    () => answer(api.GET("/api/bots/{name}/stats", { params: { ...params, query: { since: props.span } } })),
    10_000,
  );
  // The marks' sources: the bot's versions and alert episodes, polled as their sections do.
  const versions = usePoll(() => answer(api.GET("/api/bots/{name}/versions", { params })), 10_000).data;
  const alerts = usePoll(() => answer(api.GET("/api/bots/{name}/alerts", { params })), 10_000).data;
  const [showLimit, setShowLimit] = useState(false);
  const samples = data?.samples ?? [];
  const limit = samples.reduce<number | null>((most, s) => s.memory_limit_bytes ?? most, null);
  const mostMemory = Math.max(0, ...samples.map((s) => s.memory_bytes));
  const limitInView = limit !== null && referenceInView(mostMemory, limit);
  const marks = botChartMarks(samples, versions?.versions ?? [], alerts?.episodes ?? []);
  const at = samples.map((s) => Date.parse(s.at));
  const last = samples.at(-1);
  return (
    <>
      <ErrorNote error={error} />
      {data && samples.length === 0 ? (
        <p className="meta" data-testid="bot-no-samples">
          No samples in this span yet: a running bot is sampled every 5 s, kept as a row per minute for a day
          and per ten minutes for a week.
        </p>
      ) : null}
      {samples.length > 0 ? (
        <>
          <BotLineChart
            label={`Memory, ${samples.length} samples, now ${memory(last?.memory_bytes ?? null)}${limit ? ` of ${memory(limit)}` : ""}`}
            testId="bot-memory-chart"
            series={{ at, values: samples.map((s) => s.memory_bytes) }}
            unit={memoryUnit(Math.max(mostMemory, limitInView || showLimit ? (limit ?? 0) : 0))}
            limit={limit !== null && (limitInView || showLimit) ? limit : null}
            marks={marks}
          />
          {limit !== null && !limitInView ? (
            <label className="chart-toggle">
              <input type="checkbox" checked={showLimit} onChange={(e) => setShowLimit(e.target.checked)} />
              Show the memory limit ({memory(limit)}, far above the use: the scale grows to it)
            </label>
          ) : null}
          <BotLineChart
            label={`CPU, ${samples.length} samples, now ${cpu(last?.cpu_percent ?? null)}`}
            testId="bot-cpu-chart"
            series={{ at, values: samples.map((s) => s.cpu_percent) }}
            unit={{ scale: 1, unit: "%", show: cpu }}
            limit={null}
            marks={marks}
          />
          {marks.length > 0 ? (
            <ul className="chart-legend" aria-label="Marks">
              {marks.map((mark) => (
                <li key={`${mark.kind}-${mark.at}`}>
                  <span className={`chart-swatch bot-mark-${mark.kind}`} />
                  {mark.text}, {formatDate(new Date(mark.at).toISOString())}
                </li>
              ))}
            </ul>
          ) : null}
          <p className="meta">
            {formatDate(samples[0]!.at)} – {formatDate(last!.at)}, a point per {data?.resolution_secs} s
          </p>
        </>
      ) : null}
    </>
  );
}

/** Memory's axis in MiB, or in GiB once the chart reaches a GiB. */
function memoryUnit(most: number): LineUnit {
  const gib = 1024 * 1024 * 1024;
  return most >= gib
    ? { scale: gib, unit: "GiB", show: memory }
    : { scale: 1024 * 1024, unit: "MiB", show: memory };
}
