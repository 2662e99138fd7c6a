import { useState } from "react";
import type { Schema } from "../../api.js";
import { ChartFrame, plotWidth } from "../../charts/chart-frame.js";
import { linear, niceTicks, referenceInView } from "../../charts/scale.js";
import { useChartPoint } from "../../charts/use-chart-point.js";
import { usd } from "../../usd.js";

type Day = Schema<"UsageReport">["days"][number];

const plotHeight = 160;
/** The groups a bar is split into by name; the rest of a day's spend is one "others" part. */
const named = 7;
const colors = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#0891b2", "#db2777", "#65a30d"];
const othersColor = "#9ca3af";
const others = "others";

/**
 * A bar per UTC day on a dollar axis with round ticks and gridlines, each bar stacked by the
 * report's grouping (user, agent or model; a legend names the colours), the daily budget as a
 * dashed line, and a day's dollars, whole and per group, on hover or with the arrow keys.
 */
export function DailySpendChart(props: {
  days: Day[];
  /** The report's rows' keys, most spent first: the stacking order, biggest at the bottom. */
  keys: string[];
  grouping: string;
  budgetPerDay: number | null;
}) {
  const { days, budgetPerDay } = props;
  const [showBudget, setShowBudget] = useState(false);
  const most = Math.max(0, ...days.map((day) => day.usd));
  const budgetInView = budgetPerDay !== null && referenceInView(most, budgetPerDay);
  const budget = budgetPerDay !== null && (budgetInView || showBudget) ? budgetPerDay : null;
  const axis = niceTicks(Math.max(most, budget ?? 0), 4);
  const y = linear([0, axis.top], [plotHeight, 0]);
  const slot = days.length === 0 ? plotWidth : plotWidth / days.length;
  const keys = props.keys.slice(0, named);
  const colorOf = (key: string) =>
    key === others ? othersColor : (colors[keys.indexOf(key)] ?? othersColor);
  const point = useChartPoint(days.length, (fraction) => Math.floor(fraction * days.length));
  const shown = point.index === null ? null : days[point.index];
  const split = shown ? parts(shown, keys).map((part) => `${part.key} ${usd(part.usd)}`) : [];
  const readout = shown
    ? `${shown.day}: ${usd(shown.usd)}${split.length > 0 ? ` · ${split.join(", ")}` : ""}`
    : "Point at a bar, or focus the chart and use the arrow keys, to read a day.";
  const step = Math.max(1, Math.ceil(days.length / 6));
  return (
    <figure className="usage-chart">
      <figcaption>
        Spend per day by {props.grouping}
        {budget !== null ? `; the dashed line is the daily budget, ${usd(budget)}` : ""}
      </figcaption>
      <ChartFrame
        label={`Spend per day, ${days.length} days, at most ${usd(most)} a day`}
        testId="usage-chart"
        plotHeight={plotHeight}
        points={days.length}
        point={point}
        readout={readout}
        yTicks={axis.ticks.map((tick) => ({ at: tick / axis.top, label: dollars(tick, axis.step) }))}
        xTicks={days
          .map((day, i) => ({ at: (i + 0.5) / days.length, label: day.day.slice(5), i }))
          .filter((tick) => (days.length - 1 - tick.i) % step === 0)}
      >
        {days.map((day, i) => {
          let base = 0;
          return (
            <g
              key={day.day}
              data-day={day.day}
              data-usd={day.usd}
              className={i === point.index ? "shown" : ""}
            >
              {parts(day, keys).map((part) => {
                const top = base + part.usd;
                const rect = (
                  <rect
                    key={part.key}
                    className="bar"
                    data-key={part.key}
                    data-usd={part.usd}
                    x={i * slot + slot * 0.1}
                    width={slot * 0.8}
                    y={y(top)}
                    height={Math.max(y(base) - y(top), 0)}
                    fill={colorOf(part.key)}
                  />
                );
                base = top;
                return rect;
              })}
            </g>
          );
        })}
        {budget !== null ? (
          <line
            className="budget"
            data-testid="usage-budget-line"
            x1={0}
            x2={plotWidth}
            y1={y(budget)}
            y2={y(budget)}
            vectorEffect="non-scaling-stroke"
          />
        ) : null}
      </ChartFrame>
      {props.keys.length > 0 ? (
        <ul className="chart-legend" aria-label={`Colours by ${props.grouping}`}>
          {[...keys, ...(props.keys.length > named ? [others] : [])].map((key) => (
            <li key={key}>
              <span className="chart-swatch" style={{ background: colorOf(key) }} />
              {key}
            </li>
          ))}
        </ul>
      ) : null}
      {budgetPerDay !== null && !budgetInView ? (
        <label className="chart-toggle">
          <input type="checkbox" checked={showBudget} onChange={(e) => setShowBudget(e.target.checked)} />
          Show the daily budget ({usd(budgetPerDay)}, far above the spend: the scale grows to it)
        </label>
      ) : null}
    </figure>
  );
}

/** A day's spend per group in stacking order: the named groups, then the rest as "others". */
function parts(day: Day, keys: string[]): { key: string; usd: number }[] {
  const named = keys.flatMap((key) => day.groups.filter((group) => group.key === key));
  const rest = day.groups
    .filter((group) => !keys.includes(group.key))
    .reduce((sum, group) => sum + group.usd, 0);
  return rest > 0 ? [...named, { key: others, usd: rest }] : named;
}

/** A tick's dollars with as many decimals as its step has (`$0.01`, `$2.5`, `$20`). */
function dollars(value: number, step: number): string {
  const decimals = (String(step).split(".")[1] ?? "").length;
  return `$${value.toFixed(value === 0 ? 0 : Math.min(decimals, 6))}`;
}
