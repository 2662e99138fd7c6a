import { ChartFrame, plotWidth } from "../../charts/chart-frame.js";
import { linear, niceTicks, timeTicks } from "../../charts/scale.js";
import { useChartPoint } from "../../charts/use-chart-point.js";
import { formatDate } from "../../dates.js";
import type { BotChartMark } from "./bot-chart-marks.js";

const plotHeight = 140;

/** A series as the chart reads it: times (epoch ms) and values, oldest first. */
export interface LineSeries {
  at: number[];
  values: number[];
}

/** How a metric's values are written: the axis in `unit` (MiB, %), a value in full. */
export interface LineUnit {
  /** Axis values are `value / scale` of `unit`. */
  scale: number;
  unit: string;
  show: (value: number) => string;
}

/**
 * One metric of a bot over time: a line on an axis autoscaled to round ticks of its data, time
 * ticks under it, the bot's marks (versions, restarts, alerts) as vertical lines, a limit as a
 * dashed line when `limit` is given, and the value at a point on hover or with the arrow keys.
 */
export function BotLineChart(props: {
  label: string;
  testId: string;
  series: LineSeries;
  unit: LineUnit;
  limit: number | null;
  marks: BotChartMark[];
}) {
  const { series, unit } = props;
  const count = series.at.length;
  const first = series.at[0] ?? 0;
  const last = series.at.at(-1) ?? 0;
  const [start, end] = last > first ? [first, last] : [first - 30_000, first + 30_000];
  const most = Math.max(0, ...series.values, props.limit ?? 0) / unit.scale;
  const axis = niceTicks(most, 4);
  const x = linear([start, end], [0, plotWidth]);
  const y = linear([0, axis.top * unit.scale], [plotHeight, 0]);
  const point = useChartPoint(count, (fraction) => nearest(series.at, start + fraction * (end - start)));
  const points = series.values.map((v, i) => `${x(series.at[i]!).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const at = point.index;
  const readout =
    at === null
      ? "Point at the chart, or focus it and use the arrow keys, to read a value."
      : `${formatDate(new Date(series.at[at]!).toISOString())}: ${unit.show(series.values[at]!)}${marksUpTo(props.marks, series.at, at)}`;
  return (
    <figure className="bot-chart">
      <figcaption>{props.label}</figcaption>
      <ChartFrame
        label={props.label}
        testId={props.testId}
        plotHeight={plotHeight}
        points={count}
        point={point}
        readout={readout}
        yTicks={axis.ticks.map((tick) => ({ at: tick / axis.top, label: `${tick} ${unit.unit}` }))}
        xTicks={timeTicks(start, end, 5).map((tick) => ({
          at: (tick.at - start) / (end - start),
          label: tick.label,
        }))}
        overlay={[
          ...(at !== null
            ? [
                <span
                  key="dot"
                  className="chart-dot"
                  style={{
                    left: `${(x(series.at[at]!) / plotWidth) * 100}%`,
                    top: `${(y(series.values[at]!) / plotHeight) * 100}%`,
                  }}
                />,
              ]
            : []),
          ...props.marks.map((mark) => (
            <span
              key={`${mark.kind}-${mark.at}`}
              className={`bot-mark-label bot-mark-${mark.kind}`}
              style={{ left: `${((mark.at - start) / (end - start)) * 100}%` }}
              data-testid="bot-chart-mark"
              data-kind={mark.kind}
              title={`${mark.text}, ${formatDate(new Date(mark.at).toISOString())}`}
            >
              {mark.short}
            </span>
          )),
        ]}
      >
        {props.marks.map((mark) => (
          <line
            key={`${mark.kind}-${mark.at}`}
            className={`bot-mark bot-mark-${mark.kind}`}
            x1={x(mark.at)}
            x2={x(mark.at)}
            y1={0}
            y2={plotHeight}
            vectorEffect="non-scaling-stroke"
          />
        ))}
        {props.limit !== null ? (
          <line
            x1={0}
            y1={y(props.limit)}
            x2={plotWidth}
            y2={y(props.limit)}
            className="limit"
            vectorEffect="non-scaling-stroke"
          />
        ) : null}
        <polyline points={points} className="series" vectorEffect="non-scaling-stroke" />
        {at !== null ? (
          <line
            className="chart-cursor"
            x1={x(series.at[at]!)}
            x2={x(series.at[at]!)}
            y1={0}
            y2={plotHeight}
            vectorEffect="non-scaling-stroke"
          />
        ) : null}
      </ChartFrame>
    </figure>
  );
}

/** The index of the time nearest `time` (times oldest first). */
function nearest(times: number[], time: number): number {
  let best = 0;
  times.forEach((t, i) => {
    if (Math.abs(t - time) < Math.abs(times[best]! - time)) best = i;
  });
  return best;
}

/** The marks between the point before `index` and it, as the readout says them. */
function marksUpTo(marks: BotChartMark[], times: number[], index: number): string {
  const after = index > 0 ? times[index - 1]! : Number.NEGATIVE_INFINITY;
  const texts = marks.filter((mark) => mark.at > after && mark.at <= times[index]!).map((mark) => mark.text);
  return texts.length > 0 ? ` · ${texts.join(", ")}` : "";
}
