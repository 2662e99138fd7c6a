import { useState } from "react";
import { type AnswerOf, answer, api } from "../../api.js";
import { formatDate } from "../../dates.js";
import { ErrorNote } from "../agents/error-note.js";
import { cpu, memory } from "./bot-view.js";
import { usePoll } from "./use-poll.js";

type Sample = AnswerOf<"getBotStats">["samples"][number];

/** The spans the chart offers; the server picks the resolution (5 s, 1 min, 10 min). */
const spans = ["1h", "24h", "7d"] as const;
type Span = (typeof spans)[number];

const width = 600;
const height = 120;

/**
 * A bot's memory (against its limit) and CPU over the last hour, day or week, as two plain SVG
 * line charts (GET /api/bots/:name/stats), refreshed every 10 s. The SVG scales to the page.
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
  const { data, error } = usePoll(
    () =>
      answer(
        api.GET("/api/bots/{name}/stats", {
          params: { path: { name: props.name }, query: { since: props.span } },
        }),
      ),
    10_000,
  );
  const samples = data?.samples ?? [];
  const limit = samples.reduce<number | null>((most, s) => s.memory_limit_bytes ?? most, null);
  const memoryTop = Math.max(limit ?? 0, ...samples.map((s) => s.memory_bytes), 1);
  const cpuTop = Math.max(100, ...samples.map((s) => s.cpu_percent));
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
          <Chart
            label={`Memory, ${samples.length} samples, now ${memory(last?.memory_bytes ?? null)}${limit ? ` of ${memory(limit)}` : ""}`}
            testId="bot-memory-chart"
            samples={samples}
            value={(s) => s.memory_bytes}
            top={memoryTop}
            limit={limit}
            show={(v) => memory(v)}
          />
          <Chart
            label={`CPU, ${samples.length} samples, now ${cpu(last?.cpu_percent ?? null)}`}
            testId="bot-cpu-chart"
            samples={samples}
            value={(s) => s.cpu_percent}
            top={cpuTop}
            limit={null}
            show={(v) => cpu(v)}
          />
          <p className="meta">
            {formatDate(samples[0]!.at)} – {formatDate(last!.at)}, a point per {data?.resolution_secs} s
          </p>
        </>
      ) : null}
    </>
  );
}

function Chart(props: {
  label: string;
  testId: string;
  samples: Sample[];
  value: (sample: Sample) => number;
  top: number;
  limit: number | null;
  show: (value: number) => string;
}) {
  const { samples, top } = props;
  const x = (i: number) => (samples.length === 1 ? width / 2 : (i / (samples.length - 1)) * width);
  const y = (v: number) => height - (v / top) * (height - 4);
  const points = samples.map((s, i) => `${x(i).toFixed(1)},${y(props.value(s)).toFixed(1)}`).join(" ");
  const most = Math.max(...samples.map(props.value));
  return (
    <figure className="bot-chart">
      <figcaption>{props.label}</figcaption>
      <svg
        role="img"
        aria-label={props.label}
        data-testid={props.testId}
        data-points={samples.length}
        viewBox={`0 0 ${width} ${height}`}
        preserveAspectRatio="none"
      >
        <line x1={0} y1={height} x2={width} y2={height} className="axis" />
        {props.limit !== null ? (
          <line x1={0} y1={y(props.limit)} x2={width} y2={y(props.limit)} className="limit">
            <title>{`limit ${props.show(props.limit)}`}</title>
          </line>
        ) : null}
        <polyline points={points} className="series" vectorEffect="non-scaling-stroke">
          <title>{`highest ${props.show(most)}`}</title>
        </polyline>
      </svg>
      <div className="meta bot-chart-scale">
        <span>0</span>
        <span>
          {props.limit !== null ? `limit ${props.show(props.limit)} · ` : ""}top {props.show(top)}
        </span>
      </div>
    </figure>
  );
}
