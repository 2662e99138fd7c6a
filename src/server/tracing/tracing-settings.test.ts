import { describe, expect, it } from "vitest";
import { tracingSettings } from "./tracing-settings.js";

describe("tracing settings from the OpenTelemetry environment", () => {
  it("is off when no OTLP endpoint is set, or when the SDK or the traces exporter is turned off", () => {
    expect(tracingSettings({})).toBeUndefined();
    expect(tracingSettings({ OTEL_SERVICE_NAME: "ry" })).toBeUndefined();
    expect(
      tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://localhost:4318", OTEL_SDK_DISABLED: "true" }),
    ).toBeUndefined();
    expect(
      tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://localhost:4318", OTEL_TRACES_EXPORTER: "none" }),
    ).toBeUndefined();
  });

  it("sends to the base endpoint's /v1/traces, or to the traces endpoint as given", () => {
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" })).toMatchObject({
      tracesUrl: "http://collector:4318/v1/traces",
      serviceName: "runyard",
      sampler: { name: "parentbased_always_on", ratio: 1 },
    });
    expect(
      tracingSettings({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://tempo.example/otlp/v1/traces",
      })?.tracesUrl,
    ).toBe("https://tempo.example/otlp/v1/traces");
  });

  it("reads headers as percent-encoded key=value pairs, the traces' own over the shared ones", () => {
    expect(
      tracingSettings({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
        OTEL_EXPORTER_OTLP_HEADERS: "api-key=a%20b, tenant=t1",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: "tenant=t2",
      })?.headers,
    ).toEqual({ "api-key": "a b", tenant: "t2" });
  });

  it("names the setting and gives a hint for an endpoint that is no URL, an unknown sampler or a bad ratio", () => {
    const bad = (env: Record<string, string>) => {
      try {
        tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", ...env });
      } catch (error) {
        return error as { code: string; message: string; hint: string };
      }
      throw new Error("accepted");
    };
    expect(bad({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })).toMatchObject({
      code: "INVALID_INPUT",
      message: expect.stringContaining("OTEL_EXPORTER_OTLP_ENDPOINT"),
      hint: expect.stringContaining("http://"),
    });
    expect(bad({ OTEL_TRACES_SAMPLER: "sometimes" })).toMatchObject({
      message: expect.stringContaining("OTEL_TRACES_SAMPLER"),
      hint: expect.stringContaining("parentbased_traceidratio"),
    });
    expect(bad({ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "2" }).message).toContain(
      "OTEL_TRACES_SAMPLER_ARG",
    );
    expect(bad({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }).hint).toContain("4318");
  });

  it("never repeats a header's value in its error: it may be a key", () => {
    let message = "";
    try {
      tracingSettings({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
        OTEL_EXPORTER_OTLP_HEADERS: "secret-only",
      });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain("OTEL_EXPORTER_OTLP_HEADERS");
    expect(message).not.toContain("secret-only");
  });
});
