import { chownSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import { busyboxImage, requireDocker } from "./helpers/docker.js";
import { type SandboxedUp, startSandboxedUp } from "./helpers/sandboxed-up.js";
import { api, type RunView, readEvents, waitForRun } from "./helpers/server.js";

/**
 * A member names the `cwd` of their step: on `runyard up`'s sandboxing runner, a cwd that is one
 * of the folders the sandbox makes its own (/proc, /dev, /run, /tmp) or the kernel's /sys would
 * put the host's in their place, and with them every process's environment and every socket.
 */
let up: SandboxedUp & { listed: string };

beforeEach(async () => {
  // `up` runs in a folder of its own (its runner's working folder) and lists one more root.
  const listed = tempDir("runyard-listed-");
  up = { ...(await startSandboxedUp({ RUNYARD_STEP_CWD_ROOTS: listed })), listed };
});

afterEach(async () => {
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

async function probe(cwd: string, script: string, host?: string): Promise<{ run: RunView; text: string }> {
  const { status, body } = await api<{ run_id: string }>(
    up.url,
    "POST",
    "/api/runs",
    { kind: "workflow", workflow: workflow(cwd, script, host), vars: {} },
    up.userToken,
  );
  expect(status, JSON.stringify(body)).toBe(201);
  const run = await waitForRun(
    up.url,
    body.run_id,
    (view) => view.status === "success" || view.status === "failed",
  );
  return { run, text: JSON.stringify(await readEvents(up.url, body.run_id)) };
}

describe("a member's step that names a folder of the machine's runtime as its cwd", () => {
  it("is refused for /run and /var/run, so the host's Docker socket stays out of reach", async () => {
    // Docker's API on the host's socket answers whoever may open it: root on the host.
    const script = [
      `python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/docker.sock'); s.send(b'GET /version HTTP/1.0\\r\\n\\r\\n'); print(s.recv(99))" 2>/dev/null | grep -q 'HTTP/1' && echo "LE""AK-docker" || echo "no""-docker"`,
      `ls /run | grep -q . && echo "LE""AK-run" || echo "no""-run"`,
    ].join("\n");
    for (const cwd of ["/run", "/var/run"]) {
      const { run, text } = await probe(cwd, script);
      expect(text, cwd).not.toContain("LEAK-");
      expect(run.status, cwd).toBe("failed");
      expect(text, cwd).toContain("which a sandbox replaces with its own");
      expect(text, cwd).toContain("SPAWN_FAILED");
    }
  });

  it("is refused for /proc, so the host's processes and their command lines stay out of sight", async () => {
    const upPid = up.proc.child.pid!;
    const { run, text } = await probe(
      "/proc",
      `tr '\\0' ' ' < /proc/${upPid}/cmdline | grep -q up && echo "LE""AK-proc" || echo "no""-proc"`,
    );
    expect(text).not.toContain("LEAK-");
    expect(run.status).toBe("failed");
    expect(text).toContain("which a sandbox replaces with its own");
  });

  it("is refused for /dev, /sys and the host's /tmp", async () => {
    const host = tempDir("runyard-host-marker-");
    const cases: Array<[string, string]> = [
      // The host's /dev has a hundred entries (its disks, kmsg, every tty); a sandbox's, fifteen.
      ["/dev", `[ "$(ls /dev | wc -l)" -gt 40 ] && echo "LE""AK-dev" || echo "no""-dev"`],
      ["/sys", `ls /sys/class >/dev/null 2>&1 && echo "LE""AK-sys" || echo "no""-sys"`],
      ["/tmp", `ls -d ${host} >/dev/null 2>&1 && echo "LE""AK-tmp" || echo "no""-tmp"`],
    ];
    for (const [cwd, script] of cases) {
      const { run, text } = await probe(cwd, script);
      expect(text, cwd).not.toContain("LEAK-");
      expect(run.status, cwd).toBe("failed");
      expect(text, cwd).toContain("which a sandbox replaces with its own");
    }
  });

  it("runs in a folder under the runner's working folder and in one step_cwd_roots lists", async () => {
    for (const folder of [join(up.work, "project"), join(up.listed, "app")]) {
      mkdirSync(folder, { recursive: true });
      const { run, text } = await probe(folder, `pwd; echo "own""-ok"`);
      expect(run.status, text).toBe("success");
      expect(text).toContain("own-ok");
    }
  });

  it("is refused anywhere else: another folder of the machine, through a link too", async () => {
    const elsewhere = tempDir("runyard-elsewhere-");
    writeFileSync(join(elsewhere, "private.txt"), "LEAK-elsewhere");
    symlinkSync(elsewhere, join(up.work, "link"));
    for (const cwd of [elsewhere, join(up.work, "link"), "/root", "/var/lib"]) {
      const { run, text } = await probe(cwd, "cat private.txt 2>/dev/null; ls -a");
      expect(text, cwd).not.toContain("LEAK-elsewhere");
      expect(run.status, cwd).toBe("failed");
      expect(text, cwd).toContain("is outside the folders a sandboxed step may work in");
      expect(text, cwd).toContain("step_cwd_roots");
    }
  });
});

describe.skipIf(!haveDocker)("a member's step in a container that names its cwd", () => {
  // A container's cwd is bind-mounted into it: the same folders as a sandboxed process step may
  // work in, else a member would mount any folder of the machine (and under a root runner run as
  // its owner).
  it("is refused outside the runner's working folder and step_cwd_roots, and runs inside them", async () => {
    const host = `{executor: docker, image: ${await busyboxImage()}}`;
    // Another user's folder: under a root runner a container runs as its cwd's owner.
    const elsewhere = tempDir("runyard-elsewhere-");
    writeFileSync(join(elsewhere, "private.txt"), "LEAK-elsewhere", { mode: 0o600 });
    if (process.getuid?.() === 0) {
      chownSync(elsewhere, 1234, 1234);
      chownSync(join(elsewhere, "private.txt"), 1234, 1234);
    }
    symlinkSync(elsewhere, join(up.work, "link-docker"));
    for (const cwd of [elsewhere, join(up.work, "link-docker"), "/var/run"]) {
      const { run, text } = await probe(cwd, "cat private.txt 2>/dev/null; ls -a", host);
      expect(text, cwd).not.toContain("LEAK-elsewhere");
      expect(run.status, cwd).toBe("failed");
      expect(text, cwd).toContain("SPAWN_FAILED");
    }
    const own = join(up.listed, "in-container");
    mkdirSync(own, { recursive: true });
    const { run, text } = await probe(own, `echo "own""-ok"`, host);
    expect(run.status, text).toBe("success");
    expect(text).toContain("own-ok");
  });
});
