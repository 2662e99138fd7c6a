import { Job } from "kubernetes-models/batch/v1/Job";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { Secret } from "kubernetes-models/v1/Secret";
import { describe, expect, it } from "vitest";
import {
  argvVariable,
  jobObject,
  type KubeJobRequest,
  kubeJobTtlSeconds,
  kubeLabels,
  labelValue,
  networkPolicyObject,
  secretObject,
} from "./job-objects.js";

const request: KubeJobRequest = {
  name: "runyard-0a1b2c3d4e5f",
  namespace: "agents",
  image: "registry.example/runyard-agent:1",
  argv: ["/work/home/agents/bin/claude", "-p", "fix the bug"],
  env: { ANTHROPIC_API_KEY: "sk-key-123", ANTHROPIC_BASE_URL: "http://10.0.0.7:8080", "BAD NAME": "x" },
  workingDir: "/work/home/worktrees/t1",
  labels: {
    [kubeLabels.runId]: "run_01",
    [kubeLabels.task]: "task_01",
    [kubeLabels.turn]: "1",
    [kubeLabels.runnerId]: "runner-a",
  },
  extraSecrets: ["proxy-ca"],
  user: { uid: 10001, gid: 10001 },
  limits: { memoryBytes: 2 * 1024 ** 3, cpuMillis: 1500 },
  deadlineSeconds: 1860,
  claim: {
    name: "runyard-work",
    mounts: [
      { subPath: "worktrees/t1", mountPath: "/work/home/worktrees/t1", readOnly: false },
      { subPath: "agents", mountPath: "/work/home/agents", readOnly: true },
    ],
  },
  nodeName: "node-1",
  egress: [
    { cidr: "10.0.0.7", port: 8080 },
    { cidr: "10.0.0.7", port: 8080 },
    { cidr: "2001:db8::1", port: 443 },
  ],
  graceSeconds: 5,
};
const owner = { name: request.name, uid: "0b6c9a1e-1111-2222-3333-444455556666" };

describe("the objects of a Job", () => {
  it("are valid against the Kubernetes 1.33 schemas", () => {
    new Job(jobObject(request) as never).validate();
    new Secret(secretObject(request, owner) as never).validate();
    new NetworkPolicy(networkPolicyObject(request, owner) as never).validate();
  });

  it("hold the pod hardened: non-root with fsGroup, read-only root, no capabilities, no token, limits", () => {
    const job = jobObject(request);
    expect(job.spec?.backoffLimit).toBe(0);
    expect(job.spec?.activeDeadlineSeconds).toBe(1860);
    const pod = job.spec?.template.spec;
    expect(pod?.restartPolicy).toBe("Never");
    expect(pod?.automountServiceAccountToken).toBe(false);
    expect(pod?.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 10001,
      fsGroup: 10001,
      seccompProfile: { type: "RuntimeDefault" },
    });
    const container = pod?.containers[0];
    expect(container?.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    });
    expect(container?.resources?.limits).toEqual({ memory: String(2 * 1024 ** 3), cpu: "1500m" });
    expect(container?.volumeMounts).toContainEqual({
      name: "workspace",
      mountPath: "/work/home/agents",
      subPath: "agents",
      readOnly: true,
    });
    expect(job.metadata?.labels?.[kubeLabels.runId]).toBe("run_01");
    expect(job.spec?.template.metadata?.labels?.[kubeLabels.job]).toBe(request.name);
  });

  it("leave the cluster a backstop: a TTL after the Job finished, and its /tmp and home in memory with a size limit", () => {
    const job = jobObject(request);
    expect(job.spec?.ttlSecondsAfterFinished).toBe(kubeJobTtlSeconds);
    expect(job.spec?.template.spec?.volumes).toEqual(
      expect.arrayContaining([
        { name: "home", emptyDir: { medium: "Memory", sizeLimit: "512Mi" } },
        { name: "tmp", emptyDir: { medium: "Memory", sizeLimit: "1Gi" } },
      ]),
    );
    expect(networkPolicyObject(request, owner).metadata?.ownerReferences).toEqual([
      expect.objectContaining({ kind: "Job", name: request.name, uid: owner.uid, blockOwnerDeletion: true }),
    ]);
  });

  it("keep the key and the command in the Secret, never in the Job's spec", () => {
    const spec = JSON.stringify(jobObject(request));
    expect(spec).not.toContain("sk-key-123");
    expect(spec).not.toContain("fix the bug");
    const secret = secretObject(request, owner);
    expect(secret.stringData?.ANTHROPIC_API_KEY).toBe("sk-key-123");
    expect(JSON.parse(secret.stringData?.[argvVariable] ?? "[]")).toEqual(request.argv);
    expect(secret.stringData).not.toHaveProperty("BAD NAME");
    expect(secret.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "Job", uid: owner.uid });
  });

  it("let the pod reach DNS and the named addresses only", () => {
    const policy = networkPolicyObject(request, owner);
    expect(policy.spec?.ingress).toEqual([]);
    expect(policy.spec?.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(policy.spec?.egress?.slice(1)).toEqual([
      { to: [{ ipBlock: { cidr: "10.0.0.7/32" } }], ports: [{ protocol: "TCP", port: 8080 }] },
      { to: [{ ipBlock: { cidr: "2001:db8::1/128" } }], ports: [{ protocol: "TCP", port: 443 }] },
    ]);
  });

  it("carry ids as label values Kubernetes takes", () => {
    expect(labelValue("run_01HZX")).toBe("run_01HZX");
    expect(labelValue("-a/b:c-")).toBe("a_b_c");
    expect(labelValue("x".repeat(80))).toHaveLength(63);
  });
});
