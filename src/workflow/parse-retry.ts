/**
 * A step's `retry:`: a number (the retries, as `retry_count` says it), or a policy
 * `{attempts, backoff, delay, max_delay, on_exit_codes, on}`. Every problem is reported at its
 * line and column; the short form `retry_count` / `retry_delay_seconds` is read by parse-steps.
 */
import { isScalar, isSeq } from "yaml";
import { type Backoff, backoffKinds, type RetryPolicy, type RetryReason, retryReasons } from "./model.js";
import { readDuration } from "./parse-duration.js";
import { suggestionHint } from "./suggest.js";
import { type Field, FieldReader, type YamlReader } from "./yaml-reader.js";

const retryKeys = ["attempts", "backoff", "delay", "max_delay", "on_exit_codes", "on"];
/** A step runs at most this many times on a host: past it, a retry loop hides a broken step. */
export const maxRetryAttempts = 100;
/** No wait between attempts is longer than a day. */
const maxDelaySeconds = 86_400;

function keyHint(key: string): string | undefined {
  if (key === "limit" || key === "max" || key === "count" || key === "retries") {
    return '"attempts" is how many times the step runs at most, the first included';
  }
  if (key === "interval" || key === "wait") return 'the wait before a retry is "delay"';
  if (key === "when" || key === "retry_on") return 'the failures that are retried are "on"';
  if (key === "exit_codes") return 'the exit codes that are retried are "on_exit_codes"';
  return undefined;
}

/**
 * Reads `retry:`. `shortForm`: the step also has `retry_count` or `retry_delay_seconds`, which
 * say the same thing another way; both at once is refused.
 */
export function readRetry(
  reader: YamlReader,
  field: Field,
  label: string,
  shortForm: Field | undefined,
): RetryPolicy | undefined {
  if (shortForm) {
    reader.report(
      shortForm.key,
      `${label} has both retry and ${String(shortForm.key.value)}`,
      "write the retries once: retry: {attempts, delay, ...} (or only retry_count and retry_delay_seconds)",
    );
    return undefined;
  }
  const node = field.value;
  if (isScalar(node) && typeof node.value === "number") {
    const retries = reader.number(node, `retry of ${label}`, "non-negative integer");
    if (retries === undefined) return undefined;
    if (!checkAttempts(reader, node, retries + 1, `retry of ${label}`)) return undefined;
    return { attempts: retries + 1, backoff: "exponential", delaySeconds: 1, on: [...retryReasons] };
  }
  const map = reader.mapping(node, `retry of ${label}`);
  if (!map) return undefined;
  const where = `retry of ${label}`;
  const fields = reader.fields(map, `in ${where}`, retryKeys, keyHint);
  const read = new FieldReader(reader, fields, where);
  const policy: RetryPolicy = { attempts: 1, backoff: "exponential", delaySeconds: 1, on: [...retryReasons] };
  let ok = true;

  const attempts = fields.get("attempts");
  if (!attempts) {
    reader.report(
      field.key,
      `${where} has no attempts`,
      "add attempts: how many times the step runs at most, e.g. 3",
    );
    ok = false;
  } else {
    const value = reader.number(attempts.value, `attempts of ${where}`, "positive integer");
    if (value === undefined || !checkAttempts(reader, attempts.value, value, `attempts of ${where}`))
      ok = false;
    else policy.attempts = value;
  }

  const backoff = read.string("backoff");
  if (backoff !== undefined && !(backoffKinds as readonly string[]).includes(backoff)) {
    reader.report(
      read.value("backoff"),
      `backoff of ${where} must be fixed or exponential, got ${JSON.stringify(backoff)}`,
      suggestionHint(backoff, backoffKinds, "kinds"),
    );
    ok = false;
  } else if (backoff !== undefined) policy.backoff = backoff as Backoff;
  else if (fields.has("backoff")) ok = false;

  const delay = fields.get("delay");
  if (delay) {
    const value = readDuration(reader, delay.value, `delay of ${where}`, false);
    if (value === undefined || !checkLongest(reader, delay.value, value, `delay of ${where}`)) ok = false;
    else policy.delaySeconds = value;
  }
  const maxDelay = fields.get("max_delay");
  if (maxDelay) {
    const value = readDuration(reader, maxDelay.value, `max_delay of ${where}`, false);
    if (value === undefined) ok = false;
    else if (value < policy.delaySeconds) {
      reader.report(
        maxDelay.value,
        `max_delay of ${where} (${value} s) is less than its delay (${policy.delaySeconds} s)`,
        "max_delay caps the growing wait: make it at least the delay, or remove it",
      );
      ok = false;
    } else policy.maxDelaySeconds = value;
  }

  const on = fields.get("on");
  if (on) {
    const reasons = readReasons(reader, on.value, `on of ${where}`);
    if (reasons === undefined) ok = false;
    else policy.on = reasons;
  }
  const exitCodes = fields.get("on_exit_codes");
  if (exitCodes) {
    const codes = readExitCodes(reader, exitCodes.value, `on_exit_codes of ${where}`);
    if (codes === undefined) ok = false;
    else if (!policy.on.includes("error")) {
      reader.report(
        exitCodes.key,
        `${where} has on_exit_codes, but its on does not list error`,
        "on_exit_codes narrows which failed commands (error) are retried: add error to on, or remove on_exit_codes",
      );
      ok = false;
    } else policy.onExitCodes = codes;
  }
  return ok ? policy : undefined;
}

function checkAttempts(reader: YamlReader, node: unknown, attempts: number, label: string): boolean {
  if (attempts <= maxRetryAttempts) return true;
  reader.report(
    node,
    `${label} makes ${attempts} attempts; at most ${maxRetryAttempts}`,
    "a step that fails that often needs fixing, not retrying",
  );
  return false;
}

function checkLongest(reader: YamlReader, node: unknown, seconds: number, label: string): boolean {
  if (seconds <= maxDelaySeconds) return true;
  reader.report(
    node,
    `${label} is ${seconds} s, more than a day`,
    "schedule the workflow instead of waiting a day in it",
  );
  return false;
}

function readReasons(reader: YamlReader, node: unknown, label: string): RetryReason[] | undefined {
  const names = reader.stringList(node, label);
  if (names === undefined) return undefined;
  if (names.length === 0) {
    reader.report(node, `${label} is empty`, `name what is retried: ${retryReasons.join(", ")}`);
    return undefined;
  }
  const reasons: RetryReason[] = [];
  let ok = true;
  names.forEach((name, i) => {
    const itemNode = isSeq(node) ? reader.deref(node.items[i]) : node;
    if (!(retryReasons as readonly string[]).includes(name)) {
      reader.report(
        itemNode,
        `${label}: unknown failure ${JSON.stringify(name)}`,
        suggestionHint(name, retryReasons, "what may be retried"),
      );
      ok = false;
    } else if (reasons.includes(name as RetryReason)) {
      reader.report(itemNode, `${label} lists ${name} twice`);
      ok = false;
    } else reasons.push(name as RetryReason);
  });
  return ok ? reasons : undefined;
}

function readExitCodes(reader: YamlReader, node: unknown, label: string): number[] | undefined {
  if (!isSeq(node) || node.items.length === 0) {
    reader.report(node, `${label} must be a list of exit codes, e.g. [1, 75]`);
    return undefined;
  }
  const codes: number[] = [];
  let ok = true;
  for (const item of node.items) {
    const itemNode = reader.deref(item);
    const code = reader.number(itemNode, `${label} entry`, "non-negative integer");
    if (code === undefined) ok = false;
    else if (code > 255) {
      reader.report(itemNode, `${label}: ${code} is no exit code`, "exit codes are 0 to 255");
      ok = false;
    } else if (code === 0) {
      reader.report(
        itemNode,
        `${label}: 0 is success, which is never retried`,
        "list the codes of failures, 1 to 255",
      );
      ok = false;
    } else codes.push(code);
  }
  return ok ? codes : undefined;
}
