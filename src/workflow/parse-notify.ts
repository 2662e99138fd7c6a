/** `notify:`: webhooks told of every run state change (the workflow format's notifier). */
import { isMap, isScalar, isSeq } from "yaml";
import { quoted } from "../core/quoted-input.js";
import type { NotifySpec } from "./model.js";
import { isHttpUrl } from "./parse-hosts.js";
import { FieldReader, type YamlReader } from "./yaml-reader.js";

/** The notifier's defaults: `NotifyRetry = 2`, `NotifyDelay = 500ms`. */
const defaultRetry = 2;
const defaultDelayMs = 500;
const notifyKeys = ["url", "secret", "retry", "delay"];
const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** A URL string, one `{url, ...}` mapping, or a list of either. */
export function readNotify(reader: YamlReader, node: unknown): NotifySpec[] {
  if (!isSeq(node)) {
    const spec = readTarget(reader, node, "notify");
    return spec ? [spec] : [];
  }
  return node.items
    .map((item, i) => readTarget(reader, reader.deref(item), `notify[${i}]`))
    .filter((spec) => spec !== undefined);
}

function readTarget(reader: YamlReader, node: unknown, label: string): NotifySpec | undefined {
  if (isScalar(node) && typeof node.value === "string") {
    return checkedUrl(reader, node, label)
      ? { url: node.value, retry: defaultRetry, delayMs: defaultDelayMs }
      : undefined;
  }
  if (!isMap(node)) {
    reader.report(node, `${label} must be a URL or a mapping with url`, "write notify: http://HOST/hook");
    return undefined;
  }
  const fields = reader.fields(node, `in ${label}`, notifyKeys);
  const urlField = fields.get("url");
  if (!urlField) reader.report(node, `${label} has no url`, "add url: http://HOST/hook");
  const url = urlField && checkedUrl(reader, urlField.value, `url of ${label}`);
  const read = new FieldReader(reader, fields, label);
  const secret = read.string("secret");
  const retry = fields.has("retry") ? read.number("retry", "non-negative integer") : defaultRetry;
  const delayField = fields.get("delay");
  const delayMs = delayField ? readDelay(reader, delayField.value, `delay of ${label}`) : defaultDelayMs;
  if (
    url === undefined ||
    (fields.has("secret") && secret === undefined) ||
    retry === undefined ||
    delayMs === undefined
  ) {
    return undefined;
  }
  return secret === undefined ? { url, retry, delayMs } : { url, secret, retry, delayMs };
}

function checkedUrl(reader: YamlReader, node: unknown, label: string): string | undefined {
  const url = reader.string(node, label);
  if (url === undefined || isHttpUrl(url)) return url;
  reader.report(node, `${label} must be an http(s) URL, got ${quoted(url)}`);
  return undefined;
}

/** Milliseconds as a number, or a duration such as "500ms", "2s", "1m". */
function readDelay(reader: YamlReader, node: unknown, label: string): number | undefined {
  if (isScalar(node) && typeof node.value === "string") {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(node.value.trim());
    if (match) return Number(match[1]) * durationUnits[match[2]!]!;
    reader.report(
      node,
      `${label} must be a duration, got ${quoted(String(node.value))}`,
      'write "500ms", "2s" or "1m"',
    );
    return undefined;
  }
  return reader.number(node, label, "non-negative number");
}
