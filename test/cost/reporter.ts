import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import type { Reporter, TestModule, Vitest } from "vitest/node";
import { costFolderEnv, type StartKind, type StartRecord } from "./record.js";
import { secondsFile } from "./sequencer.js";

/** The columns of the map, in order: what the helpers record, then what Docker's events show. */
const columns = [
  ["server", "servers"],
  ["runner", "runners"],
  ["up", "ups"],
  ["cli", "CLI runs"],
  ["postgres", "PostgreSQL"],
  ["model server", "model srv"],
  ["forge server", "forge srv"],
  ["kubernetes server", "k8s srv"],
  ["pod", "pods"],
  ["browser", "browsers"],
  ["container", "containers"],
] as const;

type Counted = StartKind | "pod" | "container";

interface FileCost {
  file: string;
  project: string;
  tests: number;
  seconds: number;
  /** CPU seconds of the file's worker and the processes it started and reaped. */
  cpuSeconds: number;
  counts: Partial<Record<Counted, number>>;
}

interface ContainerStart {
  at: number;
  labels: Record<string, string>;
}

/** Where the full map goes, beside the suite's other artifacts (screenshots). */
const artifact = "test-artifacts/test-cost.md";
/** The page that keeps the 30 slowest rows, rewritten between its markers on request. */
const docsPage = "docs/test-cost.md";
const docsStart = "<!-- cost-map:start -->";
const docsEnd = "<!-- cost-map:end -->";
/** A container's start and its file's start and end, as two processes saw them: this much apart. */
const clockSlackMs = 2_000;

/**
 * The cost map (docs/test-cost.md): each test file's time and what it started, sorted by time,
 * written to test-artifacts/test-cost.md; with RUNYARD_TEST_COST_DOCS=1 its 30 slowest rows also go
 * into docs/test-cost.md.
 */
export default class CostReporter implements Reporter {
  private root = process.cwd();
  private folder = "";
  private dockerEvents: ChildProcess | undefined;
  private containers: ContainerStart[] = [];
  private windows = new Map<string, { start: number; end: number }>();

  onInit(vitest: Vitest): void {
    this.root = vitest.config.root;
    this.folder = mkdtempSync(join(tmpdir(), "runyard-test-cost-"));
    // Set before any worker starts: the workers inherit it, and their helpers write there.
    process.env[costFolderEnv] = this.folder;
    this.followDocker();
  }

  onTestModuleStart(module: TestModule): void {
    this.windows.set(module.moduleId, { start: Date.now(), end: Number.POSITIVE_INFINITY });
  }

  onTestModuleEnd(module: TestModule): void {
    const window = this.windows.get(module.moduleId);
    if (window) window.end = Date.now();
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    this.dockerEvents?.kill();
    const records = this.readRecords();
    rmSync(this.folder, { recursive: true, force: true });
    const rows = modules.map((module) => this.fileCost(module, records));
    const unattributed = this.countContainers(rows, records);
    rows.sort((a, b) => b.seconds - a.seconds);
    const table = costTable(rows);
    const heading = `${rows.length} files, ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`;
    const note =
      unattributed > 0
        ? `\n${unattributed} containers started while two files ran and named no runner of either (a test's own containers, a runner started outside the helpers, or another run's on the same Docker engine): not counted above.\n`
        : "";
    mkdirSync(join(this.root, "test-artifacts"), { recursive: true });
    writeFileSync(join(this.root, artifact), `# Test cost map\n\n${heading}\n\n${table}${note}`);
    if (process.env.RUNYARD_TEST_COST_DOCS === "1") {
      this.writeDocs(rows.slice(0, 30), heading);
      // The order the next runs start their files in (test/cost/sequencer.ts).
      const seconds = Object.fromEntries(
        rows.map((row) => [`${row.project}:${row.file}`, Number(row.seconds.toFixed(1))]),
      );
      writeFileSync(join(this.root, secondsFile), `${JSON.stringify(seconds, null, 2)}\n`);
    }
  }

  /** Follows Docker's container starts for the run; without Docker there are none to count. */
  private followDocker(): void {
    const child = spawn(
      "docker",
      ["events", "--filter", "type=container", "--filter", "event=start", "--format", "{{json .}}"],
      { stdio: ["ignore", "pipe", "ignore"] },
    );
    child.on("error", () => {});
    let pending = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      const lines = (pending + chunk).split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        try {
          const event = JSON.parse(line) as {
            timeNano?: number;
            Actor?: { Attributes?: Record<string, string> };
          };
          this.containers.push({
            at: event.timeNano ? Math.round(event.timeNano / 1e6) : Date.now(),
            labels: event.Actor?.Attributes ?? {},
          });
        } catch {
          // not an event line
        }
      }
    });
    this.dockerEvents = child;
  }

  private readRecords(): StartRecord[] {
    const records: StartRecord[] = [];
    for (const name of readdirSync(this.folder)) {
      for (const line of readFileSync(join(this.folder, name), "utf8").split("\n")) {
        if (line) records.push(JSON.parse(line) as StartRecord);
      }
    }
    return records;
  }

  private fileCost(module: TestModule, records: StartRecord[]): FileCost {
    const counts: FileCost["counts"] = {};
    let cpuSeconds = 0;
    for (const record of records) {
      if (record.file !== module.moduleId) continue;
      if ("kind" in record) counts[record.kind] = (counts[record.kind] ?? 0) + 1;
      else if ("cpuSeconds" in record) cpuSeconds += record.cpuSeconds;
    }
    return {
      file: relative(this.root, module.moduleId),
      project: module.project.name,
      tests: [...module.children.allTests()].length,
      seconds: fileSeconds(module),
      cpuSeconds,
      counts,
    };
  }

  /**
   * Gives each container to the file that started it: among the files running when it started,
   * the one whose runner its `runyard.runner` label names, or that started the scripted Kubernetes
   * server for a pod's container, or the only one running. Returns how many found no single file.
   */
  private countContainers(rows: FileCost[], records: StartRecord[]): number {
    const byFile = new Map(rows.map((row) => [join(this.root, row.file), row]));
    const runnerIds = new Map<string, Set<string>>();
    const kubernetes = new Set<string>();
    for (const record of records) {
      if ("runnerId" in record) {
        const ids = runnerIds.get(record.file) ?? new Set();
        ids.add(record.runnerId);
        runnerIds.set(record.file, ids);
      } else if ("kind" in record && record.kind === "kubernetes server") kubernetes.add(record.file);
    }
    const ours = new Set([...runnerIds.values()].flatMap((ids) => [...ids]));
    let unattributed = 0;
    const pods = new Set<string>();
    for (const container of this.containers) {
      const runner = container.labels["runyard.runner"];
      // A runner of no file of this run: another run's on the same engine.
      if (runner && !ours.has(runner)) continue;
      let running = [...this.windows]
        .filter(([, w]) => w.start - clockSlackMs <= container.at && container.at <= w.end + clockSlackMs)
        .map(([file]) => file);
      const pod = container.labels["io.kubernetes.pod.uid"];
      const narrowed = running.filter((file) =>
        runner ? runnerIds.get(file)?.has(runner) : pod ? kubernetes.has(file) : true,
      );
      if (narrowed.length > 0) running = narrowed;
      const row = running.length === 1 ? byFile.get(running[0] as string) : undefined;
      if (!row) {
        unattributed++;
        continue;
      }
      row.counts.container = (row.counts.container ?? 0) + 1;
      if (pod && !pods.has(pod)) {
        pods.add(pod);
        row.counts.pod = (row.counts.pod ?? 0) + 1;
      }
    }
    return unattributed;
  }

  private writeDocs(rows: FileCost[], heading: string): void {
    const path = join(this.root, docsPage);
    const page = readFileSync(path, "utf8");
    const start = page.indexOf(docsStart);
    const end = page.indexOf(docsEnd);
    if (start < 0 || end < start)
      throw new Error(`${docsPage} lacks its ${docsStart} and ${docsEnd} markers`);
    const section = `${docsStart}\nThe 30 slowest of ${heading}:\n\n${costTable(rows)}`;
    writeFileSync(path, page.slice(0, start) + section + page.slice(end));
  }
}

function costTable(rows: FileCost[]): string {
  const header = `| file | project | tests | s | CPU s | ${columns.map(([, title]) => title).join(" | ")} |`;
  const rule = `|---|---|--:|--:|--:|${columns.map(() => "--:").join("|")}|`;
  const line = (row: FileCost): string =>
    `| ${row.file} | ${row.project} | ${row.tests} | ${row.seconds.toFixed(1)} | ${row.cpuSeconds.toFixed(1)} | ${columns
      .map(([kind]) => row.counts[kind] ?? "")
      .join(" | ")} |`;
  const total = rows.reduce((sum, row) => sum + row.seconds, 0);
  const cpu = rows.reduce((sum, row) => sum + row.cpuSeconds, 0);
  return `${[header, rule, ...rows.map(line)].join("\n")}\n\nTotal: ${total.toFixed(1)} s and ${cpu.toFixed(1)} CPU s over ${rows.length} files.\n`;
}

/**
 * A file's own seconds: its tests and hooks, and the import of it and its setup files with what
 * its suites do as they are collected (`src/cli/run-imports.test.ts` walks the CLI's import graph
 * there: 5 s, against 6 ms in its tests, so it was ordered last among the unit files and ran
 * alone while the integration workers started).
 */
function fileSeconds(module: TestModule): number {
  const diagnostic = module.diagnostic();
  return (diagnostic.duration + diagnostic.collectDuration + diagnostic.setupDuration) / 1000;
}
