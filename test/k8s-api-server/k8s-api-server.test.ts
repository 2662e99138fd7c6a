/**
 * The scripted Kubernetes API server, driven by the real @kubernetes/client-node and by kubectl:
 * Jobs whose pods run in Docker, watch, logs, foreground deletion and garbage collection.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import { BatchV1Api, CoreV1Api, KubeConfig, Log, type V1Job, Watch } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../helpers/cli.js";
import { busyboxImage, removeTestObjects, requireDocker, testRunLabel } from "../helpers/docker.js";
import { type ScriptedKubernetes, startScriptedKubernetes } from "./server.js";

const run = `k8s-api-${randomBytes(4).toString("hex")}`;
const namespace = "agents";
let k8s: ScriptedKubernetes;
let kubeconfig: string;
let config: KubeConfig;
let image: string;
let haveDocker = false;

beforeAll(async () => {
  haveDocker = await requireDocker();
  if (haveDocker) image = await busyboxImage();
  k8s = await startScriptedKubernetes({
    root: tempDir("runyard-k8s-api-"),
    namespaces: [namespace],
    containerLabels: { [testRunLabel]: run },
  });
  const token = k8s.addServiceAccount({ namespace });
  kubeconfig = k8s.writeKubeconfig(token, namespace);
  config = new KubeConfig();
  config.loadFromFile(kubeconfig);
}, 120_000);

afterAll(async () => {
  await k8s?.close();
  if (haveDocker) await removeTestObjects(run);
});

const job = (name: string, script: string, extra: Partial<V1Job["spec"]> = {}): V1Job => ({
  apiVersion: "batch/v1",
  kind: "Job",
  metadata: { name, labels: { "runyard.dev/run-id": "r1" } },
  spec: {
    backoffLimit: 0,
    ...extra,
    template: {
      metadata: { labels: { "runyard.dev/run-id": "r1" } },
      spec: {
        restartPolicy: "Never",
        containers: [{ name: "agent", image, command: ["sh", "-c", script] }],
      },
    },
  },
});

describe("the scripted Kubernetes API server", () => {
  it("runs a Job's pod in Docker: create, watch to Complete, the pod's log, then a foreground delete takes the pod", async () => {
    if (!haveDocker) return;
    const batch = config.makeApiClient(BatchV1Api);
    const core = config.makeApiClient(CoreV1Api);
    const created = await batch.createNamespacedJob({
      namespace,
      body: job("hello", "echo hello from the pod; echo to stderr >&2; echo 'last line'"),
    });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.spec?.selector?.matchLabels?.["batch.kubernetes.io/controller-uid"]).toBe(
      created.metadata?.uid,
    );

    // The real watch stream, through the client's Watch.
    const events: string[] = [];
    const complete = new Promise<V1Job>((resolve, reject) => {
      void new Watch(config)
        .watch(
          `/apis/batch/v1/namespaces/${namespace}/jobs`,
          { fieldSelector: "metadata.name=hello" },
          (type, object: V1Job) => {
            events.push(type);
            if (object.status?.conditions?.some((c) => c.type === "Complete" && c.status === "True"))
              resolve(object);
          },
          (error) => (error ? reject(error) : undefined),
        )
        .then((abort) => complete.finally(() => abort.abort()));
    });
    const done = await complete;
    expect(events[0]).toBe("ADDED");
    expect(done.status?.succeeded).toBe(1);

    const podList = await core.listNamespacedPod({ namespace, labelSelector: "job-name=hello" });
    expect(podList.items).toHaveLength(1);
    const pod = podList.items[0]!;
    expect(pod.status?.phase).toBe("Succeeded");
    expect(pod.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({
      exitCode: 0,
      reason: "Completed",
    });
    expect(pod.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: "Job",
      name: "hello",
      controller: true,
    });
    const log = await core.readNamespacedPodLog({ namespace, name: pod.metadata!.name!, container: "agent" });
    // stdout and stderr in one log, each in its order (Docker, as a kubelet, does not order the two).
    expect(log.split("\n").sort()).toEqual(["", "hello from the pod", "last line", "to stderr"]);
    expect(log.indexOf("hello from the pod")).toBeLessThan(log.indexOf("last line"));

    const deleting = await batch.deleteNamespacedJob({
      namespace,
      name: "hello",
      propagationPolicy: "Foreground",
    });
    expect(deleting).toBeDefined();
    await k8s.waitFor("jobs", namespace, "hello", (o) => o === undefined);
    expect(k8s.list("pods", namespace).filter((p) => p.metadata.labels?.["job-name"] === "hello")).toEqual(
      [],
    );
  });

  it("follows a running pod's log until its container ends", async () => {
    if (!haveDocker) return;
    const batch = config.makeApiClient(BatchV1Api);
    await batch.createNamespacedJob({
      namespace,
      body: job("follow", "for i in 1 2 3; do echo line $i; sleep 0.3; done"),
    });
    const running = await waitForPod(
      "follow",
      (p) => p?.status?.phase === "Running" || p?.status?.phase === "Succeeded",
    );
    let text = "";
    const sink = new Writable({
      write(chunk, _enc, next) {
        text += chunk.toString();
        next();
      },
    });
    // The client pipes the response into the sink, which finishes when the server ends the stream.
    const finished = new Promise((resolve) => sink.on("finish", resolve));
    await new Log(config).log(namespace, running.metadata.name, "agent", sink, { follow: true });
    await finished;
    expect(text).toBe("line 1\nline 2\nline 3\n");
  });

  it("deletes a finished Job ttlSecondsAfterFinished after it ended, with its pod and the Secret it owns; a medium: Memory emptyDir is a tmpfs of its sizeLimit", async () => {
    if (!haveDocker) return;
    const batch = config.makeApiClient(BatchV1Api);
    const core = config.makeApiClient(CoreV1Api);
    // The tmpfs is read from a Job of its own: a Job's end is stamped to the second, as
    // Kubernetes stamps it, so one of ttlSecondsAfterFinished 1 may be gone, its pod's log with
    // it, as soon as its pod succeeded.
    const scratch = job("scratch", "grep ' /scratch ' /proc/mounts");
    const scratchSpec = scratch.spec!.template.spec!;
    scratchSpec.volumes = [{ name: "scratch", emptyDir: { medium: "Memory", sizeLimit: "64Mi" } }];
    scratchSpec.containers[0]!.volumeMounts = [{ name: "scratch", mountPath: "/scratch" }];
    await batch.createNamespacedJob({ namespace, body: scratch });
    const created = await batch.createNamespacedJob({
      namespace,
      body: job("expiring", "true", { ttlSecondsAfterFinished: 1 }),
    });
    await core.createNamespacedSecret({
      namespace,
      body: {
        metadata: {
          name: "expiring",
          ownerReferences: [
            { apiVersion: "batch/v1", kind: "Job", name: "expiring", uid: created.metadata!.uid! },
          ],
        },
        stringData: { A: "b" },
      },
    });
    // Its pod, found as it is made: the Job and the pod may both be gone by the time the tmpfs is read.
    const pod = await waitForPod("expiring", () => true);
    const scratchPod = await waitForPod("scratch", (p) => p?.status?.phase === "Succeeded");
    const log = await core.readNamespacedPodLog({
      namespace,
      name: scratchPod.metadata.name,
      container: "agent",
    });
    expect(log).toMatch(/^tmpfs \/scratch tmpfs .*size=65536k/);
    await k8s.waitFor("jobs", namespace, "expiring", (o) => o === undefined, 20_000);
    await k8s.waitFor("secrets", namespace, "expiring", (o) => o === undefined, 20_000);
    expect(k8s.get("pods", namespace, pod.metadata.name)).toBeUndefined();
  });

  it("kubectl lists the Jobs, Secrets and NetworkPolicies in the namespace", async () => {
    const core = config.makeApiClient(CoreV1Api);
    await core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: "turn-settings" }, stringData: { OPENAI_API_KEY: "sk-test" } },
    });
    const { stdout } = await promisify(execFile)(
      "kubectl",
      ["--kubeconfig", kubeconfig, "get", "jobs,secrets,networkpolicies", "-n", namespace, "-o", "json"],
      { timeout: 60_000 },
    );
    const listed = JSON.parse(stdout) as {
      kind: string;
      items: { kind: string; metadata: { name: string } }[];
    };
    expect(listed.kind).toBe("List");
    expect(listed.items.map((i) => `${i.kind}/${i.metadata.name}`)).toContain("Secret/turn-settings");
  });
});

async function waitForPod(
  jobName: string,
  test: (pod: { status?: { phase?: string } } | undefined) => boolean,
) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const pod = k8s.list("pods", namespace).find((p) => p.metadata.labels?.["job-name"] === jobName);
    if (pod)
      return k8s
        .waitFor("pods", namespace, pod.metadata.name, (p) => test(p as never), 20_000)
        .then((p) => p!);
    if (Date.now() > deadline)
      throw new Error(
        `no pod of job ${jobName}: ${JSON.stringify(k8s.list("jobs", namespace))} ${JSON.stringify(k8s.list("pods", namespace))}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
