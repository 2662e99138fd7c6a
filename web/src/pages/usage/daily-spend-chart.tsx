import type { Schema } from "../../api.js";

type Day = Schema<"UsageReport">["days"][number];

const height = 160;
const barGap = 2;

/**
 * A bar per UTC day, in plain SVG: its width follows the page (viewBox scaled to 100%), each bar
 * has a title with its day and dollars, and the tallest is labelled, so a phone shows it as well.
 */
export function DailySpendChart(props: { days: Day[] }) {
  const days = props.days;
  const most = Math.max(0, ...days.map((day) => day.usd));
  const width = Math.max(days.length * 12, 120);
  const barWidth = days.length === 0 ? 0 : width / days.length - barGap;
  return (
    <figure className="usage-chart">
      <svg
        role="img"
        aria-label={`Spend per day, ${days.length} days, at most $${most.toFixed(2)} a day`}
        viewBox={`0 0 ${width} ${height + 18}`}
        preserveAspectRatio="none"
      >
        <line x1={0} y1={height} x2={width} y2={height} className="axis" />
        {days.map((day, i) => {
          const barHeight = most === 0 ? 0 : Math.max(day.usd > 0 ? 2 : 0, (day.usd / most) * (height - 8));
          return (
            <rect
              key={day.day}
              data-day={day.day}
              data-usd={day.usd}
              x={i * (barWidth + barGap)}
              y={height - barHeight}
              width={Math.max(barWidth, 1)}
              height={barHeight}
              className="bar"
            >
              <title>{`${day.day}: $${day.usd.toFixed(2)}`}</title>
            </rect>
          );
        })}
      </svg>
      <figcaption>
        <span>{days[0]?.day}</span>
        <span>most in a day: ${most.toFixed(2)}</span>
        <span>{days.at(-1)?.day}</span>
      </figcaption>
    </figure>
  );
}
