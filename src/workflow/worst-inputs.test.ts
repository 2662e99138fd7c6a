import { describe, expect, it } from "vitest";
import { cpuPacedMs, cpuTimed } from "../../test/helpers/machine-pace.js";
import { quoted } from "../core/quoted-input.js";
import { formatDiagnostic } from "./model.js";
import { parseWorkflow } from "./parse.js";
import { didYouMean, suggestionHint } from "./suggest.js";
import { maxDiagnostics } from "./yaml-reader.js";

/*
 * Input built to be costly costs no more than its refusal: what is matched or suggested against
 * is capped before the matching, an error quotes a short start of what was sent, and a file of
 * thousands of mistakes is answered with its first ones.
 */

const schedule = (fields: string) =>
  `name: w\nschedule: {cron: "* * * * *", ${fields}}\nsteps:\n  - name: a\n    action: cmd.run\n    args: {cmd: "true"}\n`;

describe("a time zone, a cron, a choice and a label of 600 KB", () => {
  it("refuses the time zone by its length, before any zone is compared, quoting its start", () => {
    const { value, cpuMs } = cpuTimed(() =>
      parseWorkflow(schedule(`timezone: "Europe/${"B".repeat(600_000)}"`), "w.yaml"),
    );
    expect(value.diagnostics).toHaveLength(1);
    const [problem] = value.diagnostics;
    expect(problem?.message).toMatch(
      /^timezone of schedule: "Europe\/B+…" \(600007 characters\) is longer than 64 characters, so it is no time zone$/,
    );
    expect(formatDiagnostic(problem!).length).toBeLessThan(400);
    // It took 20 s when every zone was compared with it.
    expect(cpuMs).toBeLessThan(cpuPacedMs(2000));
  });

  it("still suggests the zone a short slip meant", () => {
    const { diagnostics } = parseWorkflow(schedule('timezone: "Europe/Berln"'), "w.yaml");
    expect(diagnostics[0]?.hint).toBe('did you mean "Europe/Berlin"?');
  });

  it("refuses a cron by its length, and a choice, quoting the start of each", () => {
    const cron = parseWorkflow(
      `name: w\nschedule: {cron: "${"1,".repeat(300_000)}1 * * * *"}\nsteps:\n  - name: a\n    action: cmd.run\n    args: {cmd: "true"}\n`,
      "w.yaml",
    );
    expect(cron.diagnostics[0]?.message).toMatch(
      /^cron of schedule: "1,1,.*…" \(\d+ characters\) is longer than 200 characters$/,
    );
    const choice = parseWorkflow(schedule(`overlap: "${"x".repeat(600_000)}"`), "w.yaml");
    expect(choice.diagnostics[0]?.message).toMatch(/got "x+…" \(600000 characters\)$/);
    expect(choice.diagnostics[0]!.message.length).toBeLessThan(300);
  });

  it("refuses a runner label longer than a name may be", () => {
    const { diagnostics } = parseWorkflow(
      `name: w\ninventory:\n  hosts:\n    b: {group: linux, labels: [ok, "${"L".repeat(600_000)}"]}\nsteps:\n  - name: a\n    targets: [b]\n    action: cmd.run\n    args: {cmd: "true"}\n`,
      "w.yaml",
    );
    expect(diagnostics.map((d) => d.message)).toEqual([
      'labels of host "b"[1] is 600000 characters long; a name has at most 200',
    ]);
  });
});

describe("suggestions", () => {
  it("makes no guess for a word longer than any name, however many candidates", () => {
    const zones = Intl.supportedValuesOf("timeZone");
    const { value, cpuMs } = cpuTimed(() => didYouMean("Z".repeat(600_000), zones));
    expect(value).toBeUndefined();
    // Comparing it with the zones took 2 s of CPU; a glance at its length, nothing. Counted
    // in the thread's CPU (10 ms ticks): a busy machine may keep the thread waiting past 50 ms.
    expect(cpuMs).toBeLessThan(cpuPacedMs(250));
  });

  it("lists at most 20 candidates, and says how many more there are", () => {
    const steps = Array.from({ length: 3000 }, (_, i) => `step-${i}`);
    expect(suggestionHint("nothing-like-them", steps, "steps")).toBe(
      `steps: ${steps.slice(0, 20).join(", ")} and 2980 more`,
    );
  });
});

describe("a file of thousands of mistakes", () => {
  it("is answered with its first problems and a line that says more follow", () => {
    const steps = Array.from(
      { length: 3000 },
      (_, i) =>
        `  - name: step-${String(i).padStart(60, "0")}\n    needs: [step-${String(i).padStart(60, "1")}]\n    action: cmd.run\n    args: {cmd: "true"}\n`,
    ).join("");
    const { value, cpuMs } = cpuTimed(() => parseWorkflow(`name: needs\nsteps:\n${steps}`, "w.yaml"));
    expect(value.diagnostics).toHaveLength(maxDiagnostics + 1);
    expect(value.diagnostics.at(-1)?.message).toBe(
      `more problems from here on; only the first ${maxDiagnostics} are listed`,
    );
    expect(JSON.stringify(value.diagnostics).length).toBeLessThan(200_000);
    expect(cpuMs).toBeLessThan(cpuPacedMs(10_000));
  });
});

describe("quoted", () => {
  it("quotes a short value whole, and a long one by its start and its length", () => {
    expect(quoted("Europe/Berln")).toBe('"Europe/Berln"');
    expect(quoted("a".repeat(1000))).toBe(`"${"a".repeat(60)}…" (1000 characters)`);
  });
});
