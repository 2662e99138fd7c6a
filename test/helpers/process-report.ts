import type { ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, watch } from "node:fs";
import { join } from "node:path";

/**
 * Has Node write a report of `child` (SIGUSR2, `--report-on-signal`) and prints what keeps it
 * alive: its active handles (timers, sockets, child processes) and its main thread's stack.
 */
export function sayHeld(child: ChildProcess, reports: string): void {
  const watcher = watch(reports, () => {
    const name = readdirSync(reports).find((file) => file.endsWith(".json"));
    if (!name) return;
    let report: { javascriptStack?: { stack?: string[] }; libuv?: Array<Record<string, unknown>> };
    try {
      report = JSON.parse(readFileSync(join(reports, name), "utf8"));
    } catch {
      return; // still being written: the next change of the folder reads it whole
    }
    watcher.close();
    const handles = (report.libuv ?? []).filter((handle) => handle.is_active === true);
    process.stderr.write(
      `pid ${child.pid} holds ${handles.length} active handle(s):\n${handles
        .map((handle) => `  ${JSON.stringify(handle)}`)
        .join("\n")}\nits stack:\n  ${(report.javascriptStack?.stack ?? []).join("\n  ")}\n`,
    );
  });
  watcher.unref();
  child.kill("SIGUSR2");
}
