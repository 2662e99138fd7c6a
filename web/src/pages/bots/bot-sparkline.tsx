import { answer, api } from "../../api.js";
import { linear } from "../../charts/scale.js";
import { memory } from "./bot-view.js";
import { usePoll } from "./use-poll.js";

const width = 120;
const height = 28;

/**
 * A bot's memory over the last hour as a small line (the samples the bot page charts, GET
 * /api/bots/:name/stats), from 0 to a little over its highest, as the page's chart scales to
 * use: its shape shows (a line flat under a far limit shows nothing); the text beside it gives
 * the limit.
 */
export function BotSparkline(props: { name: string; limitBytes: number | null }) {
  const { data } = usePoll(
    () =>
      answer(
        api.GET("/api/bots/{name}/stats", { params: { path: { name: props.name }, query: { since: "1h" } } }),
      ),
    15_000,
  );
  const samples = data?.samples ?? [];
  if (samples.length === 0) return null;
  const values = samples.map((s) => s.memory_bytes);
  const limit = props.limitBytes ?? samples.at(-1)?.memory_limit_bytes ?? null;
  const top = Math.max(...values, 1) * 1.1;
  const x = values.length === 1 ? () => width / 2 : linear([0, values.length - 1], [0, width]);
  const y = linear([0, top], [height - 1, 1]);
  const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const label = `Memory over the last hour: highest ${memory(Math.max(...values))}${limit ? ` of ${memory(limit)}` : ""}, ${values.length} samples`;
  return (
    <svg
      className="bot-sparkline"
      role="img"
      aria-label={label}
      data-testid={`bot-sparkline-${props.name}`}
      data-points={values.length}
      viewBox={`0 0 ${width} ${height}`}
      preserveAspectRatio="none"
    >
      <title>{label}</title>
      <polyline points={points} vectorEffect="non-scaling-stroke" />
    </svg>
  );
}
