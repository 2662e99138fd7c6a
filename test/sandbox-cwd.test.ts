import { chownSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import { busyboxImage, requireDocker } from "./helpers/docker.js";
import { memberWorkflow, submitWorkflow } from "./helpers/member-runs.js";
import { type SandboxedUp, startListedUp } from "./helpers/sandboxed-up.js";
import { api, type RunView, readEvents, waitForRun } from "./helpers/server.js";

/**
 * A member names the `cwd` of their step: only a folder under the operator's step_cwd_roots
 * (core/work-folders.ts), decided at submit (400 STEP_CWD_NOT_ALLOWED), so a folder the sandbox
 * makes its own (/proc, /dev, /run, /tmp) or the kernel's /sys, which would put the host's in their
 * place and with them every process's environment and every socket, never reaches a runner. On
 * `runyard up`'s sandboxing runner the real path is checked again, links resolved.
 */
let up: SandboxedUp & { listed: string };

beforeAll(async () => {
  // One `up` for the file, in a folder of its own (its runner's working folder), listing one more
  // root; each test names folders of its own there.
  up = await startListedUp();
});

afterAll(async () => {
  await up?.proc.kill();
});

const haveDocker = await requireDocker();

function workflow(cwd: string, script: string, host = "{}"): string {
  return [
    "version: v0.1",
    "name: cwd-probe",
    "inventory:",
    "  hosts:",
    `    local: ${host}`,
    "steps:",
    "  - name: probe",
    "    targets: [local]",
    "    action: shell.run",
    "    args:",
    // busybox has sh, not bash
    ...(host === "{}" ? [] : ["      shell: sh"]),
    `      cwd: ${cwd}`,
    "      script: |",
    ...script.split("\n").map((line) => `        ${line}`),
    "",
  ].join("\n");
}

type Submitted = { status: number; body: { run_id: string; error?: { code: string; message: string } } };

function submit(cwd: string, script: string, host?: string): Promise<Submitted> {
  return api<Submitted["body"]>(
    up.url,
    "POST",
    "/api/runs",
    { kind: "workflow", workflow: workflow(cwd, script, host), vars: {} },
    up.userToken,
  );
}

async function probe(cwd: string, script: string, host?: string): Promise<{ run: RunView; text: string }> {
  const { status, body } = await submit(cwd, script, host);
  expect(status, JSON.stringify(body)).toBe(201);
  const run = await waitForRun(
    up.url,
    body.run_id,
    (view) => view.status === "success" || view.status === "failed",
  );
  return { run, text: JSON.stringify(await readEvents(up.url, body.run_id)) };
}

/** Submits `cwd` and expects the 400 the server gives a folder outside step_cwd_roots. */
async function refusedAtSubmit(cwd: string, host?: string): Promise<string> {
  const { status, body } = await submit(cwd, "echo LE''AK-ran", host);
  expect(status, cwd).toBe(400);
  expect(body.error?.code, cwd).toBe("STEP_CWD_NOT_ALLOWED");
  return body.error?.message ?? "";
}

describe("a member's step that names a folder of the machine's runtime as its cwd", () => {
  it("is refused at submit for /run and /var/run, so the host's Docker socket stays out of reach", async () => {
    expect(await refusedAtSubmit("/run")).toContain("which a sandbox replaces with its own");
    await refusedAtSubmit("/var/run");
  });

  it("is refused at submit for /proc, /dev, /sys and the host's /tmp", async () => {
    for (const cwd of ["/proc", "/dev", "/sys", "/tmp"]) {
      expect(await refusedAtSubmit(cwd), cwd).toContain("which a sandbox replaces with its own");
    }
  });

  it("is refused at submit for a platform admin too", async () => {
    const { status, body } = await api<{ error?: { code: string } }>(up.url, "POST", "/api/runs", {
      kind: "workflow",
      workflow: workflow("/proc/self", "echo x"),
      vars: {},
    });
    expect(status).toBe(400);
    expect(body.error?.code).toBe("STEP_CWD_NOT_ALLOWED");
  });
});

describe("a member's step folder", () => {
  it("runs in a folder step_cwd_roots lists", async () => {
    const folder = join(up.listed, "app");
    mkdirSync(folder, { recursive: true });
    const { run, text } = await probe(folder, `pwd; echo "own""-ok"`);
    expect(run.status, text).toBe("success");
    expect(text).toContain("own-ok");
  });

  it("is refused at submit anywhere else: the runner's working folder, another folder of the machine", async () => {
    const elsewhere = tempDir("runyard-elsewhere-");
    for (const cwd of [join(up.work, "project"), elsewhere, "/root", "/var/lib"]) {
      expect(await refusedAtSubmit(cwd), cwd).toContain("step_cwd_roots (RUNYARD_STEP_CWD_ROOTS)");
    }
  });

  it("is refused at submit when relative, as the runner would read it from its own working folder", async () => {
    expect(await refusedAtSubmit("bin")).toContain("is a relative path");
  });

  it("is refused by the runner, with the same code, when a link under a root leads out", async () => {
    const elsewhere = tempDir("runyard-elsewhere-");
    writeFileSync(join(elsewhere, "private.txt"), "LEAK-elsewhere");
    symlinkSync(elsewhere, join(up.listed, "link"));
    const { run, text } = await probe(join(up.listed, "link"), "cat private.txt 2>/dev/null; ls -a");
    expect(text).not.toContain("LEAK-elsewhere");
    expect(run.status).toBe("failed");
    expect(text).toContain("STEP_CWD_NOT_ALLOWED");
    expect(text).toContain("leads through a symbolic link");
    expect(text).toContain("outside this runner's step_cwd_roots");
  });

  it("is refused by the runner when a step of its run swapped the folder for a link after a step worked there", async () => {
    const elsewhere = tempDir("runyard-elsewhere-");
    writeFileSync(join(elsewhere, "private.txt"), "LEAK-elsewhere");
    const swapped = join(up.listed, "swapped");
    mkdirSync(swapped);
    const runId = await submitWorkflow(
      up.url,
      memberWorkflow(
        [
          { name: "first", cwd: swapped, script: 'echo "first-""ran"' },
          {
            name: "swap",
            cwd: up.listed,
            script: `mv swapped swapped.old && ln -s ${elsewhere} swapped && echo "link-""made"`,
          },
          { name: "third", cwd: swapped, script: "cat private.txt; ls -a" },
        ],
        "cwd-swap",
      ),
      up.userToken,
    );
    const run = await waitForRun(
      up.url,
      runId,
      (view) => view.status === "success" || view.status === "failed",
    );
    const text = JSON.stringify(await readEvents(up.url, runId));
    expect(text).toContain("first-ran");
    expect(text).toContain("link-made");
    expect(text).not.toContain("LEAK-elsewhere");
    expect(run.status).toBe("failed");
    expect(text).toContain("STEP_CWD_NOT_ALLOWED");
    expect(text).toContain("leads through a symbolic link");
  });
});

describe.skipIf(!haveDocker)("a member's step in a container that names its cwd", () => {
  // A container's cwd is bind-mounted into it: the same folders as a sandboxed process step may
  // work in, else a member would mount any folder of the machine (and under a root runner run as
  // its owner).
  it("is refused outside step_cwd_roots (a link leading out, by the runner), and runs inside them", async () => {
    const host = `{executor: docker, image: ${await busyboxImage()}}`;
    // Another user's folder: under a root runner a container runs as its cwd's owner.
    const elsewhere = tempDir("runyard-elsewhere-");
    writeFileSync(join(elsewhere, "private.txt"), "LEAK-elsewhere", { mode: 0o600 });
    if (process.getuid?.() === 0) {
      chownSync(elsewhere, 1234, 1234);
      chownSync(join(elsewhere, "private.txt"), 1234, 1234);
    }
    symlinkSync(elsewhere, join(up.listed, "link-docker"));
    for (const cwd of [elsewhere, "/var/run"]) await refusedAtSubmit(cwd, host);
    const { run: linked, text: linkedText } = await probe(
      join(up.listed, "link-docker"),
      "cat private.txt 2>/dev/null; ls -a",
      host,
    );
    expect(linkedText).not.toContain("LEAK-elsewhere");
    expect(linked.status).toBe("failed");
    expect(linkedText).toContain("STEP_CWD_NOT_ALLOWED");
    const own = join(up.listed, "in-container");
    mkdirSync(own, { recursive: true });
    const { run, text } = await probe(own, `echo "own""-ok"`, host);
    expect(run.status, text).toBe("success");
    expect(text).toContain("own-ok");
  });
});
