/**
 * The step driver run by the shells step images have (dash, busybox ash), with its two folders
 * moved into a temp folder: the same script a pod runs, against real processes and signals, its
 * stdout read through the trailer splitter as the runner reads a pod's log.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { maxHandedBackOutputBytes, stepDriverScript } from "./step-driver.js";
import { type DriverResult, TrailerSplitter } from "./step-trailer.js";

const shells = ["dash", "busybox"].filter((shell) => spawnSync("which", [shell]).status === 0);
const mark = "runyard-mark-5f0c2d9e8a7b6c5d4e3f2a1b0c9d8e7f";
const folders: string[] = [];
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

/** A driver whose commands are `sh -c SCRIPT` each; `OUT` in a script is the output file's path. */
function setUp(scripts: string[]) {
  const root = mkdtempSync(join(tmpdir(), "runyard-driver-"));
  folders.push(root);
  mkdirSync(join(root, "in"));
  mkdirSync(join(root, "out"));
  const output = join(root, "out", "output");
  writeFileSync(join(root, "in", "mark"), mark);
  writeFileSync(join(root, "in", "env.GREETING"), "hello  there\n\n");
  writeFileSync(join(root, "in", "env.in"), "a step's own variable named like a driver's");
  scripts.forEach((script, i) => {
    const argv = ["sh", "-c", script.replaceAll("OUT", `'${output}'`), "name", "two  spaces", "trailing\n\n"];
    for (const [j, word] of argv.entries()) writeFileSync(join(root, "in", `argv.${i}.${j}`), word);
  });
  const driver = stepDriverScript
    .replaceAll("/runyard/in", join(root, "in"))
    .replaceAll("/runyard/out", join(root, "out"));
  writeFileSync(join(root, "driver"), driver);
  return join(root, "driver");
}

function argvOf(shell: string): string[] {
  return shell === "busybox" ? ["busybox", "sh"] : [shell];
}

interface Ran {
  code: number | null;
  output: string;
  result: DriverResult | undefined;
}

function start(shell: string, driver: string, onOutput: (text: string) => void = () => {}) {
  const argv = argvOf(shell);
  const child = spawn(argv[0]!, [...argv.slice(1), driver], { stdio: ["ignore", "pipe", "inherit"] });
  let output = "";
  const splitter = new TrailerSplitter(Buffer.from(mark), (bytes) => {
    output += bytes.toString();
    onOutput(output);
  });
  // One byte at a time: the mark split across chunks is still found.
  child.stdout.on("data", (chunk: Buffer) => {
    for (let i = 0; i < chunk.length; i++) splitter.push(chunk.subarray(i, i + 1));
  });
  const ended = new Promise<Ran>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      splitter.end();
      resolve({ code, output, result: splitter.result() });
    });
  });
  return { child, ended };
}

describe.each(shells)("the step driver under %s", (shell) => {
  it("runs each command with its words intact, stops at the first failure and says which", async () => {
    const driver = setUp([
      'printf "[%s]" "$0" "$@" "$GREETING" "$in"; echo',
      "printf 'no newline'; printf 'A=1\\nB=\\303\\251\\n' > OUT; exit 3",
      "echo never",
    ]);
    const ran = await start(shell, driver).ended;
    expect(ran.code).toBe(3);
    expect(ran.output).toBe(
      "[name][two  spaces][trailing\n\n][hello  there\n\n][a step's own variable named like a driver's]\nno newline",
    );
    expect(ran.result).toEqual({ failedIndex: 1, outputBytes: 9, output: Buffer.from("A=1\nB=é\n") });
  });

  it("ends 0 with no failed command, and does not hand back an output file over the cap", async () => {
    const driver = setUp([
      "echo fine",
      `head -c ${maxHandedBackOutputBytes + 1} /dev/zero | tr '\\0' x > OUT`,
    ]);
    const ran = await start(shell, driver).ended;
    expect(ran.code).toBe(0);
    expect(ran.output).toBe("fine\n");
    expect(ran.result).toEqual({ outputBytes: maxHandedBackOutputBytes + 1 });
  });

  it("passes SIGTERM on to the running command (the shell is the pod's PID 1)", async () => {
    const driver = setUp([`trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done`]);
    let ready!: () => void;
    const isReady = new Promise<void>((resolve) => {
      ready = resolve;
    });
    const { child, ended } = start(shell, driver, (output) => {
      if (output.includes("ready")) ready();
    });
    await isReady;
    child.kill("SIGTERM");
    const ran = await ended;
    expect(ran.code).toBe(143);
    expect(ran.output).toBe("ready\ngot-term\n");
    expect(ran.result).toBeUndefined();
  }, 20_000);
});

describe("the trailer splitter", () => {
  it("holds back what could be the start of the mark, and hands it on when it is not", () => {
    let shown = "";
    const splitter = new TrailerSplitter(Buffer.from("MARK"), (bytes) => {
      shown += bytes.toString();
    });
    splitter.push(Buffer.from("abcMA"));
    expect(shown).toBe("abc");
    splitter.push(Buffer.from("Xd MAR"));
    expect(shown).toBe("abcMAXd ");
    splitter.end();
    expect(shown).toBe("abcMAXd MAR");
    expect(splitter.result()).toBeUndefined();
  });

  it("refuses a trailer that is not the driver's", () => {
    const splitter = new TrailerSplitter(Buffer.from("MARK"), () => {});
    splitter.push(Buffer.from("xMARK nonsense\n"));
    expect(splitter.result()).toBeUndefined();
  });
});

it("has a shell to run the driver under", () => {
  // Under CI no test may skip: dash comes with Debian, busybox with the test image.
  expect(shells.length).toBeGreaterThan(0);
});
