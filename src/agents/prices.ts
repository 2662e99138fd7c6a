/**
 * List prices in USD per million tokens (input, output) of well-known models, to put a cost on
 * a run whose CLI reports tokens but no cost. A cost the CLI reports itself always wins (it
 * knows cache discounts and the account's own rates); this table is the fallback.
 *
 * Figures: the vendors' public pricing pages (anthropic.com/pricing, openai.com/api/pricing,
 * ai.google.dev/gemini-api/docs/pricing) as of late 2025, standard tier, no cache or batch
 * discount, Gemini 2.5 Pro at its rate for prompts up to 200k tokens.
 */
const pricesPerMillion: ReadonlyArray<readonly [prefix: string, input: number, output: number]> = [
  // Anthropic: Opus 4 and 4.1 kept the old rate; later Opus releases cost a third of it.
  ["claude-opus-4-0", 15, 75],
  ["claude-opus-4-1", 15, 75],
  ["claude-opus-4-20250514", 15, 75],
  ["claude-opus-4", 5, 25],
  ["claude-3-opus", 15, 75],
  ["claude-sonnet-4", 3, 15],
  ["claude-3-7-sonnet", 3, 15],
  ["claude-3-5-sonnet", 3, 15],
  ["claude-haiku-4", 1, 5],
  ["claude-3-5-haiku", 0.8, 4],
  ["claude-3-haiku", 0.25, 1.25],
  // OpenAI
  ["gpt-4o-mini", 0.15, 0.6],
  ["gpt-4o", 2.5, 10],
  ["gpt-4.1-nano", 0.1, 0.4],
  ["gpt-4.1-mini", 0.4, 1.6],
  ["gpt-4.1", 2, 8],
  ["gpt-5-nano", 0.05, 0.4],
  ["gpt-5-mini", 0.25, 2],
  ["gpt-5", 1.25, 10],
  ["o3-mini", 1.1, 4.4],
  ["o3", 2, 8],
  ["o4-mini", 1.1, 4.4],
  // Google
  ["gemini-2.5-flash-lite", 0.1, 0.4],
  ["gemini-2.5-flash", 0.3, 2.5],
  ["gemini-2.5-pro", 1.25, 10],
];

/** The longest prefix wins, so `gpt-4o-mini` is not priced as `gpt-4o`. */
const byLongestPrefix = [...pricesPerMillion].sort((a, b) => b[0].length - a[0].length);

/**
 * The list price of a model call, or undefined for a model this table does not know. Accepts
 * the names as CLIs report them: with a provider in front (`openai/gpt-4.1`, `models/gemini-2.5-pro`)
 * and a date or variant behind (`claude-sonnet-4-5-20250929`, `gpt-5-codex`).
 */
export function costFor(model: string, inputTokens: number, outputTokens: number): number | undefined {
  const name = model.toLowerCase().split("/").at(-1) ?? "";
  const price = byLongestPrefix.find(([prefix]) => name.startsWith(prefix));
  if (!price) return undefined;
  const [, input, output] = price;
  return (inputTokens * input + outputTokens * output) / 1_000_000;
}
