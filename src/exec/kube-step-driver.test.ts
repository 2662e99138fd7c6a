/**
 * The step driver run by the shells step images have (dash, busybox ash), with its three paths
 * moved into a temp folder: the same script a pod runs, against real processes and signals.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { maxHandedBackOutputBytes, parseDriverResult, stepDriverScript } from "./kube-step-driver.js";

const shells = ["dash", "busybox"].filter((shell) => spawnSync("which", [shell]).status === 0);
const folders: string[] = [];
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

function setUp(commands: string[][]) {
  const root = mkdtempSync(join(tmpdir(), "runyard-driver-"));
  folders.push(root);
  mkdirSync(join(root, "in"));
  mkdirSync(join(root, "out"));
  commands.forEach((argv, i) => {
    for (const [j, word] of argv.entries()) writeFileSync(join(root, "in", `argv.${i}.${j}`), word);
  });
  const script = stepDriverScript
    .replaceAll("/runyard/in", join(root, "in"))
    .replaceAll("/runyard/out", join(root, "out"))
    .replaceAll("/dev/termination-log", join(root, "termination-log"));
  writeFileSync(join(root, "driver"), script);
  return {
    root,
    output: join(root, "out", "output"),
    argv: (shell: string) => (shell === "busybox" ? ["busybox", "sh"] : [shell]),
    message: () => readFileSync(join(root, "termination-log"), "utf8"),
  };
}

function run(argv: string[], driver: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, [...argv.slice(1), driver], { stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout }));
  });
}

describe.each(shells)("the step driver under %s", (shell) => {
  it("runs each command with its words intact, stops at the first failure and says which", async () => {
    const t = setUp([
      ["sh", "-c", 'printf "[%s]" "$@"; echo', "name", "two  spaces", "trailing\n\n", "$HOME"],
      ["sh", "-c", "replaced below: the output file's path"],
      ["sh", "-c", "echo never"],
    ]);
    // The second command writes the output file; its path has to be known to the test.
    writeFileSync(join(t.root, "in", "argv.1.2"), `echo out; printf 'A=1\\n' > '${t.output}'; exit 3`);
    const result = await run(t.argv(shell), join(t.root, "driver"));
    expect(result.code).toBe(3);
    expect(result.stdout).toBe("[two  spaces][trailing\n\n][$HOME]\nout\n");
    expect(parseDriverResult(t.message())).toEqual({ failedIndex: 1, outputBytes: 4, output: "A=1\n" });
  });

  it("ends 0 with no failed command, and leaves out an output file too large to hand back", async () => {
    const t = setUp([["sh", "-c", "true"]]);
    writeFileSync(
      join(t.root, "in", "argv.0.2"),
      `head -c ${maxHandedBackOutputBytes + 1} /dev/zero | tr '\\0' x > '${t.output}'`,
    );
    const result = await run(t.argv(shell), join(t.root, "driver"));
    expect(result.code).toBe(0);
    expect(parseDriverResult(t.message())).toEqual({ outputBytes: maxHandedBackOutputBytes + 1 });
  });

  it("passes SIGTERM on to the running command (the shell is the pod's PID 1)", async () => {
    const t = setUp([
      ["sh", "-c", `trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done`],
    ]);
    const child = spawn(t.argv(shell)[0]!, [...t.argv(shell).slice(1), join(t.root, "driver")], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    const ready = new Promise<void>((resolve) => {
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes("ready")) resolve();
      });
    });
    const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
    await ready;
    child.kill("SIGTERM");
    expect(await closed).toBe(143);
    expect(stdout).toContain("got-term");
  }, 20_000);
});

describe("parseDriverResult", () => {
  it("reads the header and the output, and refuses anything else", () => {
    expect(parseDriverResult("runyard-step-result failed=- size=0\n")).toEqual({
      outputBytes: 0,
      output: "",
    });
    expect(parseDriverResult("runyard-step-result failed=2 size=5\nA=1\nB")).toEqual({
      failedIndex: 2,
      outputBytes: 5,
      output: "A=1\nB",
    });
    expect(parseDriverResult(undefined)).toBeUndefined();
    expect(parseDriverResult("")).toBeUndefined();
    expect(parseDriverResult("OOMKilled")).toBeUndefined();
  });
});

it("has a shell to run the driver under", () => {
  // Under CI no test may skip: dash comes with Debian, busybox with the test image.
  expect(shells.length).toBeGreaterThan(0);
});
