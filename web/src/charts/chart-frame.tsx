import type { ReactNode } from "react";
import "./chart.css";
import type { useChartPoint } from "./use-chart-point.js";

/** The plot's coordinates: x 0..1000 across, y 0..`plotHeight` down (the SVG stretches to its box). */
export const plotWidth = 1000;

/** A tick of an axis: where (a fraction of the axis, 0 at the left or the bottom) and its label. */
export interface Tick {
  at: number;
  label: string;
}

/**
 * A chart's frame: the y-axis labels at the left with a gridline each, the x-axis labels under it,
 * the plot (SVG the caller draws into, stretched to the width of the page) and the live readout of
 * the point a user reads. Labels are HTML beside the SVG, so a stretched plot never stretches text.
 * The plot is focusable: the arrow keys move the point (use-chart-point).
 */
export function ChartFrame(props: {
  label: string;
  testId: string;
  plotHeight: number;
  yTicks: Tick[];
  xTicks: Tick[];
  point: ReturnType<typeof useChartPoint>;
  readout: string;
  points: number;
  /** HTML over the plot, placed in percent of it (labels that must not stretch with the SVG). */
  overlay?: ReactNode;
  children: ReactNode;
}) {
  const { plotHeight } = props;
  return (
    <div className="chart">
      <div className="chart-body">
        <div className="chart-y" aria-hidden="true">
          {props.yTicks.map((tick) => (
            <span key={tick.label} style={{ bottom: `${tick.at * 100}%` }}>
              {tick.label}
            </span>
          ))}
        </div>
        <div
          className="chart-plot"
          role="application"
          aria-roledescription="chart"
          aria-label={props.label}
          data-testid={props.testId}
          data-points={props.points}
          {...props.point.handlers}
        >
          <svg viewBox={`0 0 ${plotWidth} ${plotHeight}`} preserveAspectRatio="none" aria-hidden="true">
            {props.yTicks.map((tick) => (
              <line
                key={tick.label}
                className="chart-grid"
                x1={0}
                x2={plotWidth}
                y1={plotHeight * (1 - tick.at)}
                y2={plotHeight * (1 - tick.at)}
                vectorEffect="non-scaling-stroke"
              />
            ))}
            {props.children}
          </svg>
          {props.overlay}
        </div>
        <div className="chart-x" aria-hidden="true">
          {props.xTicks.map((tick) => (
            <span key={`${tick.at}-${tick.label}`} style={{ left: `${tick.at * 100}%` }}>
              {tick.label}
            </span>
          ))}
        </div>
      </div>
      <p className="chart-readout meta" aria-live="polite" data-testid={`${props.testId}-readout`}>
        {props.readout}
      </p>
    </div>
  );
}
