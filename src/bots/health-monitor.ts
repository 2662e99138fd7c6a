import type { BotHealth, BotHealthReport } from "../core/bot-health.js";
import type { Probe } from "./health-probe.js";

/**
 * Probes one container every `interval_ms` (the first probe at once), one probe at a time, and
 * says what it found: `onReport` after every probe, with the status it leads to. Failures inside
 * the start period leave the container `starting`; `retries` failures in a row after it make it
 * `unhealthy`; any success makes it `healthy`. Ends with `stop()`.
 */
export class HealthMonitor {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private failures = 0;
  private status: BotHealthReport["status"] = "starting";

  constructor(
    private readonly health: BotHealth,
    private readonly probe: Probe,
    private readonly containerId: string,
    /** When the container started (its start period counts from it). */
    private readonly startedAt: number,
    private readonly onReport: (report: BotHealthReport) => void,
  ) {}

  start(): void {
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    const result = await this.probe(this.containerId).catch((error: unknown) => ({
      healthy: false,
      output: `the probe could not run: ${error instanceof Error ? error.message : String(error)}`,
    }));
    if (this.stopped) return;
    if (result.healthy) {
      this.failures = 0;
      this.status = "healthy";
    } else if (Date.now() - this.startedAt >= this.health.start_period_ms || this.status !== "starting") {
      this.failures += 1;
      if (this.failures >= this.health.retries) this.status = "unhealthy";
    }
    this.onReport({
      status: this.status,
      failures: this.failures,
      output: result.output,
      at: new Date().toISOString(),
    });
    this.schedule(this.health.interval_ms);
  }
}
