import { RunyardError } from "../../core/errors.js";

/**
 * Tracing as the OpenTelemetry environment variables set it (the names every SDK reads), parsed
 * once at start. Off (undefined) unless an OTLP endpoint is set; `OTEL_SDK_DISABLED=true` or
 * `OTEL_TRACES_EXPORTER=none` turn it off as they would any SDK.
 */
export interface TracingSettings {
  /** Where spans are POSTed: the traces endpoint as given, or the base endpoint + `/v1/traces`. */
  tracesUrl: string;
  /** `OTEL_EXPORTER_OTLP_HEADERS` / `..._TRACES_HEADERS`: sent with every export (an API key). */
  headers: Record<string, string>;
  serviceName: string;
  sampler: TracesSampler;
}

export const samplerNames = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;
export type TracesSampler = { name: (typeof samplerNames)[number]; ratio: number };

const docs = "see docs/observability.md";

/** The settings from an environment, or undefined when tracing is off; a bad value is an INVALID_INPUT naming it. */
export function tracingSettings(
  env: Readonly<Record<string, string | undefined>>,
): TracingSettings | undefined {
  const set = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value ? value : undefined;
  };
  if (set("OTEL_SDK_DISABLED")?.toLowerCase() === "true") return undefined;
  if (set("OTEL_TRACES_EXPORTER")?.toLowerCase() === "none") return undefined;
  const exporter = set("OTEL_TRACES_EXPORTER");
  if (exporter !== undefined && exporter.toLowerCase() !== "otlp")
    throw invalid(
      "OTEL_TRACES_EXPORTER",
      exporter,
      "runyard exports traces over OTLP only: set it to otlp or none",
    );
  const protocol = set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? set("OTEL_EXPORTER_OTLP_PROTOCOL");
  if (protocol !== undefined && protocol !== "http/json" && protocol !== "http/protobuf")
    throw invalid(
      "OTEL_EXPORTER_OTLP_PROTOCOL",
      protocol,
      "runyard sends OTLP over HTTP (JSON); point it at the collector's HTTP port (4318), not gRPC",
    );
  const tracesEndpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const endpoint = set("OTEL_EXPORTER_OTLP_ENDPOINT");
  if (tracesEndpoint === undefined && endpoint === undefined) return undefined;
  const tracesUrl =
    tracesEndpoint !== undefined
      ? httpUrl("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", tracesEndpoint)
      : `${httpUrl("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint!).replace(/\/+$/, "")}/v1/traces`;
  return {
    tracesUrl,
    headers: {
      ...headersOf("OTEL_EXPORTER_OTLP_HEADERS", set("OTEL_EXPORTER_OTLP_HEADERS")),
      ...headersOf("OTEL_EXPORTER_OTLP_TRACES_HEADERS", set("OTEL_EXPORTER_OTLP_TRACES_HEADERS")),
    },
    serviceName: set("OTEL_SERVICE_NAME") ?? "runyard",
    sampler: samplerOf(set("OTEL_TRACES_SAMPLER"), set("OTEL_TRACES_SAMPLER_ARG")),
  };
}

function httpUrl(name: string, text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(name, text, "give a full URL such as http://localhost:4318");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw invalid(
      name,
      text,
      "the OTLP HTTP exporter needs an http:// or https:// URL, e.g. http://localhost:4318",
    );
  return url.toString();
}

/** `key=value,key2=value2`, values percent-encoded as the OpenTelemetry spec has them. */
function headersOf(name: string, text: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  if (text === undefined) return headers;
  for (const pair of text.split(",")) {
    if (pair.trim() === "") continue;
    const at = pair.indexOf("=");
    const key = at > 0 ? pair.slice(0, at).trim() : "";
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(key))
      // The value may be a key: the message names the setting, never repeats it.
      throw new RunyardError("INVALID_INPUT", `${name} is not a list of key=value pairs`, {
        hint: `write it as api-key=SECRET,other=value (values percent-encoded); ${docs}`,
      });
    try {
      headers[key] = decodeURIComponent(pair.slice(at + 1).trim());
    } catch {
      throw new RunyardError("INVALID_INPUT", `${name}: the value of ${key} is not percent-encoded text`, {
        hint: `encode %, commas and spaces in header values (%25, %2C, %20); ${docs}`,
      });
    }
  }
  return headers;
}

function samplerOf(name: string | undefined, arg: string | undefined): TracesSampler {
  const chosen = (name ?? "parentbased_always_on").toLowerCase();
  if (!(samplerNames as readonly string[]).includes(chosen))
    throw invalid("OTEL_TRACES_SAMPLER", name!, `use one of ${samplerNames.join(", ")}`);
  let ratio = 1;
  if (chosen.endsWith("traceidratio") && arg !== undefined) {
    ratio = Number(arg);
    if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1)
      throw invalid("OTEL_TRACES_SAMPLER_ARG", arg, "give the share of traces kept, a number from 0 to 1");
  }
  return { name: chosen as TracesSampler["name"], ratio };
}

function invalid(name: string, value: string, hint: string): RunyardError {
  return new RunyardError("INVALID_INPUT", `${name}=${JSON.stringify(value)} is not valid`, {
    hint: `${hint}; ${docs}`,
  });
}
