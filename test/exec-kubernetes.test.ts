/**
 * Workflow steps on a runner with the Kubernetes executor, against the scripted API server
 * (test/k8s-api-server/: the real REST paths, the 1.33 schemas, the runner's Role, pods run as
 * Docker containers) through the real @kubernetes/client-node: output, exports, masking, output
 * caps, exit codes, cancel and timeouts, with no Job, Secret or pod left; then a workflow run
 * through `runyard server` and `runyard runner` with RUNYARD_EXECUTOR=kubernetes.
 */
import { randomBytes } from "node:crypto";
import { BatchV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { StepAttemptRequest, type StepAttemptResult } from "../src/core/step-attempt.js";
import { createExecutor } from "../src/exec/create-executor.js";
import { KubeCluster } from "../src/exec/kubernetes/cluster.js";
import { createKubeStepExecutors } from "../src/exec/kubernetes/create-executors.js";
import { deleteLeftoverJobs } from "../src/exec/kubernetes/leftover-jobs.js";
import { LocalStepRunner } from "../src/exec/local-runner.js";
import { tempDir } from "./helpers/cli.js";
import { busyboxImage, removeTestObjects, requireDocker, testRunLabel } from "./helpers/docker.js";
import { nextObject, storeHolds } from "./helpers/kube-store-wait.js";
import {
  api,
  isFinal,
  readEvents,
  runnerToken,
  startCli,
  startRunner,
  startTestServer,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";
import { type ScriptedKubernetes, startScriptedKubernetes } from "./k8s-api-server/server.js";

const run = `exec-k8s-${randomBytes(4).toString("hex")}`;
const namespace = "steps";
const haveDocker = await requireDocker();
let k8s: ScriptedKubernetes;
let kubeconfig: string;
let image = "";
let cluster: KubeCluster;
let steps: LocalStepRunner;

beforeAll(async () => {
  if (!haveDocker) return;
  image = await busyboxImage();
  k8s = await startScriptedKubernetes({
    root: tempDir("runyard-exec-k8s-"),
    namespaces: [namespace],
    containerLabels: { [testRunLabel]: run },
  });
  // The runner's own rights: the Role of deploy/kubernetes, nothing more.
  kubeconfig = k8s.writeKubeconfig(k8s.addServiceAccount({ namespace }), namespace);
  cluster = await KubeCluster.connect({ KUBECONFIG: kubeconfig }, { namespace });
  steps = new LocalStepRunner(createExecutor({ baseEnv: {}, launcher: "spawn" }), {
    killGraceMs: 2000,
    jobs: createKubeStepExecutors({
      cluster,
      image,
      runnerId: "runner-k8s-test",
      // Seconds, not the minutes a real registry may need: the pull fault is the cluster's answer.
      // Short for the test of an image that cannot be pulled: it counts from the first pull error.
      start: { pullTimeoutMs: 1000, scheduleTimeoutMs: 60_000 },
    }),
  });
}, 120_000);

afterAll(async () => {
  await k8s?.close();
  if (haveDocker) await removeTestObjects(run);
});

let counter = 0;
function request(fields: Partial<StepAttemptRequest> & { script: string }): StepAttemptRequest {
  counter += 1;
  return StepAttemptRequest.parse({
    run_id: `run_k8s_${counter}`,
    step: "s",
    host: "cluster",
    attempt: 1,
    action: "cmd.run",
    shell: "sh",
    env: {},
    ...fields,
  });
}

async function attempt(
  req: StepAttemptRequest,
  signal = new AbortController().signal,
): Promise<{ result: StepAttemptResult; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const result = await steps.runAttempt(req, {
    signal,
    onOutput: (stream, data) => {
      if (stream === "stdout") stdout += data;
      else stderr += data;
    },
  });
  return { result, stdout, stderr };
}

/** What the attempts of `runId` left in the namespace: there should be nothing. */
function leftOf(runId: string): string[] {
  return ["jobs", "secrets", "pods"].flatMap((resource) =>
    k8s
      .list(resource, namespace)
      .filter((object) => object.metadata.labels?.["runyard.dev/run-id"] === runId)
      .map((object) => `${resource}/${object.metadata.name}`),
  );
}

/** A Job made as another install's runner (or an older runyard) would have left it: its pod sleeps. */
async function makeJob(name: string, labels: Record<string, string>): Promise<void> {
  const all = { ...labels, "runyard.dev/job": name };
  await adminBatch().createNamespacedJob({
    namespace,
    body: {
      metadata: { name, labels: all },
      spec: {
        backoffLimit: 0,
        template: {
          metadata: { labels: all },
          spec: {
            restartPolicy: "Never",
            // Its sleep, as PID 1, ignores SIGTERM: no grace to wait out when the test removes it.
            terminationGracePeriodSeconds: 0,
            containers: [{ name: "step", image, command: ["sleep", "300"] }],
          },
        },
      },
    },
  });
}

async function removeJob(name: string): Promise<void> {
  await adminBatch()
    .deleteNamespacedJob({ name, namespace, propagationPolicy: "Foreground", gracePeriodSeconds: 0 })
    .catch(() => undefined);
  await k8s.waitFor("jobs", namespace, name, (job) => job === undefined, 60_000);
}

function adminBatch(): BatchV1Api {
  const admin = new KubeConfig();
  admin.loadFromFile(k8s.writeKubeconfig(k8s.adminToken, namespace));
  return admin.makeApiClient(BatchV1Api);
}

describe("a step as a Kubernetes Job", () => {
  it("runs cmd.run's lines in one pod: output, the first failing line named with its exit code, nothing after it", async () => {
    if (!haveDocker) return;
    const req = request({
      // No service-account token to reach the API with: the pod asks for none.
      script:
        'echo "first $GREETING"\nid -u\ntest ! -e /var/run/secrets/kubernetes.io/serviceaccount/token\nexit 4\necho never',
      env: { GREETING: "hello" },
    });
    const { result, stdout } = await attempt(req);
    expect(stdout).toBe("first hello\n65534\n");
    expect(result).toMatchObject({ status: "failed", exit_code: 4 });
    expect(result.error).toMatchObject({
      code: "STEP_FAILED",
      message: 'line 4 "exit 4" exited with code 4',
    });
    expect(leftOf(req.run_id)).toEqual([]);
  });

  it("exports from BOPS_EXPORT lines and $RUNYARD_OUTPUT, and masks secrets of the env and exported ones", async () => {
    if (!haveDocker) return;
    const req = request({
      action: "shell.run",
      script: [
        'echo "token is $API_TOKEN"',
        "echo BOPS_EXPORT:VERSION=1.2.3",
        'echo "DB_PASSWORD=hunter2-secret" >> "$RUNYARD_OUTPUT"',
        'printf "WHERE=%s\\n" "$(pwd)" >> "$RUNYARD_OUTPUT"',
        'echo "said hunter2-secret"',
      ].join("\n"),
      env: { API_TOKEN: "tok-0123456789" },
      export_vars: true,
    });
    const { result, stdout } = await attempt(req);
    expect(result.status).toBe("success");
    expect(stdout).toContain("token is ***");
    expect(stdout).not.toContain("tok-0123456789");
    expect(result.exports).toEqual({ VERSION: "1.2.3", DB_PASSWORD: "hunter2-secret", WHERE: "/work" });
    expect(result.secret_exports).toEqual(["DB_PASSWORD"]);
    // What the step printed after writing the file is masked once the file is read back, at the end.
    expect(leftOf(req.run_id)).toEqual([]);
  });

  it("reads the pod's whole log when the followed one ends early: no line lost, exports and $RUNYARD_OUTPUT kept", async () => {
    if (!haveDocker) return;
    // The API server ends the followed log at once, empty, as one that closes a stream early does.
    k8s.faults.endFollowedLogs(1);
    const req = request({
      action: "shell.run",
      script: [
        "echo line-one",
        "echo BOPS_EXPORT:KEPT=yes",
        'echo "FROM_FILE=1" >> "$RUNYARD_OUTPUT"',
        "echo line-two",
      ].join("\n"),
      export_vars: true,
    });
    const { result, stdout } = await attempt(req);
    expect(result.status, stdout).toBe("success");
    expect(stdout).toBe("line-one\nBOPS_EXPORT:KEPT=yes\nline-two\n");
    expect(result.exports).toEqual({ KEPT: "yes", FROM_FILE: "1" });
    expect(leftOf(req.run_id)).toEqual([]);
  });

  it("follows the log again when the API ends it while the pod runs: a line comes live, and cancel acts on it", async () => {
    if (!haveDocker) return;
    k8s.faults.endFollowedLogs(1);
    const req = request({ script: "echo ready\nsleep 300" });
    const controller = new AbortController();
    let stdout = "";
    const result = await steps.runAttempt(req, {
      signal: controller.signal,
      onOutput: (_stream, data) => {
        stdout += data;
        if (stdout.includes("ready")) controller.abort();
      },
    });
    expect(stdout).toBe("ready\n");
    expect(result.status).toBe("canceled");
    expect(leftOf(req.run_id)).toEqual([]);
  }, 40_000);

  it("caps the output it keeps and says so", async () => {
    if (!haveDocker) return;
    const req = request({
      script: "for i in 1 2 3 4 5 6 7 8 9 10; do echo line-$i; done",
      max_output_bytes: 20,
    });
    const { result, stdout, stderr } = await attempt(req);
    expect(result.status).toBe("success");
    expect(stdout).toBe("line-1\nline-2\nline-3");
    expect(stderr).toMatch(/output capped at 20 bytes: \d+ more bytes not shown/);
  });

  it("runs a step in the image it names, and fails one whose image cannot be pulled, leaving nothing", async () => {
    if (!haveDocker) return;
    k8s.faults.failImagePull("registry.invalid/nothing:1");
    k8s.faults.pullBackoffMs(200);
    const req = request({ script: "echo unreachable", image: "registry.invalid/nothing:1" });
    const { result } = await attempt(req);
    expect(result.status).toBe("failed");
    expect(result.error?.code).toBe("SPAWN_FAILED");
    expect(result.error?.message).toContain("registry.invalid/nothing:1");
    expect(leftOf(req.run_id)).toEqual([]);
  }, 60_000);

  it("a step's timeout deletes the Job and waits for its pod: timeout, nothing left", async () => {
    if (!haveDocker) return;
    // The timeout counts from the attempt's start, the pod's scheduling included: 15 s, so the pod
    // prints its line first however loaded the machine (4 s did not always reach the echo).
    const req = request({ script: "echo started\nsleep 300", timeout_ms: 15_000 });
    let stdout = "";
    let startedAt: number | undefined;
    const result = await steps.runAttempt(req, {
      signal: new AbortController().signal,
      onOutput: (stream, data) => {
        if (stream !== "stdout") return;
        stdout += data;
        if (startedAt === undefined && stdout.includes("started\n")) startedAt = performance.now();
      },
    });
    const endedAt = performance.now();
    expect(result).toMatchObject({ status: "timeout", exit_code: null });
    expect(result.error?.code).toBe("TIMEOUT");
    expect(startedAt, "the pod printed its line before the timeout").toBeDefined();
    // From the line: the rest of the 15 s, the Job's deletion and its pod's end, far from the
    // 300 s sleep an unenforced timeout would wait.
    expect(endedAt - startedAt!).toBeLessThan(60_000);
    expect(leftOf(req.run_id)).toEqual([]);
  }, 150_000);

  it("cancel deletes the Job: canceled, nothing left", async () => {
    if (!haveDocker) return;
    const req = request({ script: "echo ready\nsleep 300" });
    const controller = new AbortController();
    let stdout = "";
    // It waited out the test's timeout twice in loaded full runs, never alone: what it waits on.
    const requestsBefore = k8s.requests.length;
    const stuck = setTimeout(() => {
      const pods = k8s
        .list("pods", namespace)
        .filter((pod) => pod.metadata.labels?.["runyard.dev/run-id"] === req.run_id)
        .map((pod) => ({ name: pod.metadata.name, status: (pod as { status?: unknown }).status }));
      console.log(
        `cancel test waiting 40 s: stdout ${JSON.stringify(stdout)}, pods ${JSON.stringify(pods)}, requests ${JSON.stringify(k8s.requests.slice(requestsBefore))}`,
      );
    }, 40_000);
    onTestFinished(() => clearTimeout(stuck));
    const result = await steps.runAttempt(req, {
      signal: controller.signal,
      onOutput: (_stream, data) => {
        stdout += data;
        if (stdout.includes("ready")) controller.abort();
      },
    });
    expect(result.status).toBe("canceled");
    expect(result.error?.code).toBe("CANCELED");
    expect(leftOf(req.run_id)).toEqual([]);
  }, 60_000);

  it("a runner whose server names no install deletes the leftovers of its id that name none, and leaves an install's", async () => {
    if (!haveDocker) return;
    const runnerId = `old-server-${randomBytes(3).toString("hex")}`;
    const labels = { "runyard.dev/component": "step", "runyard.dev/runner-id": runnerId };
    const [none, other] = [`${runnerId}-none`, `${runnerId}-other`];
    await makeJob(none, labels);
    await makeJob(other, { ...labels, "runyard.dev/install": "0123456789abcdef" });
    try {
      const left = await deleteLeftoverJobs(
        cluster,
        { "runyard.dev/component": "step" },
        { runnerId, install: undefined },
        1,
      );
      expect(left).toEqual({ deleted: [none], unlabeled: [] });
      expect(k8s.get("jobs", namespace, none)).toBeUndefined();
      expect(k8s.get("jobs", namespace, other)?.metadata.name).toBe(other);
    } finally {
      await removeJob(other);
    }
  }, 120_000);

  it("the API server gone mid-step: the step fails saying so, and once it is back nothing of it is left", async () => {
    if (!haveDocker) return;
    const req = request({ script: "echo ready\nsleep 300" });
    let cut: Promise<void> | undefined;
    let result: StepAttemptResult;
    try {
      result = await steps.runAttempt(req, {
        signal: new AbortController().signal,
        onOutput: (_stream, data) => {
          if (data.includes("ready")) cut ??= k8s.faults.unreachable();
        },
      });
      await cut;
      // The runner could delete nothing while the API was away.
      expect(leftOf(req.run_id)).not.toEqual([]);
    } finally {
      await cut;
      await k8s.faults.reachable();
    }
    expect(result.status).toBe("failed");
    expect(JSON.stringify(result.error)).toContain("cannot reach the Kubernetes API server");
    await storeHolds(k8s, `nothing of ${req.run_id} left`, () => leftOf(req.run_id).length === 0, 90_000);
    expect(leftOf(req.run_id)).toEqual([]);
  }, 120_000);
});

describe("a runner with RUNYARD_EXECUTOR=kubernetes", () => {
  let server: TestServer;

  beforeAll(async () => {
    if (!haveDocker) return;
    server = await startTestServer();
  }, 60_000);

  afterAll(async () => {
    await server?.proc.kill();
  });

  it("runs a workflow's steps as Jobs: output events, exports handed to the next step", async () => {
    if (!haveDocker) return;
    const token = await runnerToken(server.url);
    const runner = await startRunner(server.url, token, {
      id: `k8s-runner-${randomBytes(3).toString("hex")}`,
      labels: "kubernetes",
      env: {
        RUNYARD_EXECUTOR: "kubernetes",
        RUNYARD_JOB_NAMESPACE: namespace,
        RUNYARD_JOB_IMAGE: image,
        KUBECONFIG: kubeconfig,
      },
    });
    try {
      const runId = await submit(
        server.url,
        `name: on-cluster
inventory:
  hosts:
    cluster: {labels: [kubernetes]}
steps:
  - name: build
    action: cmd.run
    args:
      shell: sh
      export_vars: true
      cmd: |
        echo "building on $(hostname)"
        echo BOPS_EXPORT:ARTIFACT=app-1.0.tgz
  - name: ship
    action: shell.run
    args:
      shell: sh
      script: echo "shipping $ARTIFACT"
`,
      );
      const done = await waitForRun(server.url, runId, isFinal, 120_000);
      expect(done.status).toBe("success");
      expect(done.vars).toMatchObject({ ARTIFACT: "app-1.0.tgz" });
      const events = await readEvents(server.url, runId);
      const output = events.flatMap((event) => (event.type === "step.output" ? [event.data] : [])).join("");
      expect(output).toContain("building on ");
      expect(output).toContain("shipping app-1.0.tgz");
      expect(leftOf(runId)).toEqual([]);
    } finally {
      await runner.kill();
    }
  }, 180_000);

  it("a starting runner deletes its own install's leftover step Job, leaves another install's under its id alone, and names one of no install", async () => {
    if (!haveDocker) return;
    const id = `k8s-installs-${randomBytes(3).toString("hex")}`;
    const token = await runnerToken(server.url);
    const env = {
      RUNYARD_EXECUTOR: "kubernetes",
      RUNYARD_JOB_NAMESPACE: namespace,
      RUNYARD_JOB_IMAGE: image,
      KUBECONFIG: kubeconfig,
      RUNYARD_HOME: tempDir(),
      // The runner names what it left alone in a warning.
      RUNYARD_LOG_LEVEL: "warn",
    };
    const first = await startRunner(server.url, token, { id, labels: "kubernetes", env });
    const runId = await submit(
      server.url,
      `name: long-on-cluster
inventory:
  hosts:
    cluster: {labels: [kubernetes]}
steps:
  - name: long
    action: cmd.run
    args:
      shell: sh
      cmd: sleep 300
`,
    );
    const others: string[] = [];
    let second: Awaited<ReturnType<typeof startRunner>> | undefined;
    try {
      const own = await nextObject(
        k8s,
        "jobs",
        namespace,
        (o) => o.metadata.labels?.["runyard.dev/run-id"] === runId,
      );
      // It names its runner and its install, which is what the next start deletes by.
      expect(own.metadata.labels).toMatchObject({
        "runyard.dev/runner-id": id,
        "runyard.dev/install": expect.stringMatching(/^[0-9a-f]{16}$/),
      });
      await first.kill("SIGKILL");
      // Another install in the same namespace whose runner has the same id: its step runs on; and
      // one made before Jobs named their install.
      for (const install of ["0123456789abcdef", undefined]) {
        const name = `other-${install ?? "none"}-${randomBytes(3).toString("hex")}`;
        await makeJob(name, {
          "runyard.dev/component": "step",
          "runyard.dev/runner-id": id,
          "runyard.dev/run-id": `run_other_${name}`,
          ...(install ? { "runyard.dev/install": install } : {}),
        });
        others.push(name);
      }
      second = await startRunner(server.url, token, { id, labels: "kubernetes", env });
      // Said once the welcome named the install and its own leftover was deleted.
      await second.waitFor(`kubectl delete job -n ${namespace} ${others[1]}`, 60_000);
      expect(k8s.get("jobs", namespace, own.metadata.name)).toBeUndefined();
      expect(others.map((name) => k8s.get("jobs", namespace, name)?.metadata.name)).toEqual(others);
    } finally {
      await api(server.url, "POST", `/api/runs/${runId}/cancel`);
      await first.kill();
      await second?.kill();
      await Promise.all(others.map(removeJob));
    }
  }, 180_000);

  it("refuses to start without a namespace and image, and against a cluster it cannot reach, saying which URL", async () => {
    if (!haveDocker) return;
    const token = await runnerToken(server.url);
    const base = ["runner", "--server", server.url, "--token", token, "--id", "k8s-refused"];
    const missing = startCli(base, { RUNYARD_HOME: tempDir(), RUNYARD_EXECUTOR: "kubernetes" });
    expect(await missing.exited).not.toBe(0);
    expect(missing.output()).toContain("RUNYARD_EXECUTOR=kubernetes needs RUNYARD_JOB_NAMESPACE");
    const nowhere = k8s.writeKubeconfig(k8s.addServiceAccount({ namespace }), namespace);
    await k8s.faults.unreachable();
    try {
      const unreachable = startCli(base, {
        RUNYARD_HOME: tempDir(),
        RUNYARD_EXECUTOR: "kubernetes",
        RUNYARD_JOB_NAMESPACE: namespace,
        RUNYARD_JOB_IMAGE: image,
        KUBECONFIG: nowhere,
      });
      expect(await unreachable.exited).not.toBe(0);
      expect(unreachable.output()).toContain(`cannot reach the Kubernetes API server at ${k8s.url}`);
    } finally {
      await k8s.faults.reachable();
    }
    const { status } = await api(server.url, "GET", "/api/runners");
    expect(status).toBe(200);
  }, 120_000);
});

describe("a runner that runs steps as processes", () => {
  it("fails a step that names an image, saying where it can run", async () => {
    const local = new LocalStepRunner(createExecutor({ baseEnv: {}, launcher: "spawn" }), {
      killGraceMs: 2000,
    });
    const result = await local.runAttempt(request({ script: "true", image: "busybox:1.36" }), {
      signal: new AbortController().signal,
      onOutput: () => {},
    });
    expect(result.status).toBe("failed");
    expect(result.error?.message).toContain(
      "names image busybox:1.36, and this runner runs steps as processes",
    );
    expect(result.error?.hint).toContain("RUNYARD_EXECUTOR=kubernetes");
  });
});
