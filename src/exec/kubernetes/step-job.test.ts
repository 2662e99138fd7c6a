import { describe, expect, it } from "vitest";
import { kubeSchemaProblems } from "../../../test/helpers/kube-schema.js";
import { ownedBy } from "./job-objects.js";
import {
  envNameProblem,
  labelValue,
  type StepJobInput,
  secretBytes,
  stepJobManifests,
  stepJobName,
} from "./step-job.js";

const input: StepJobInput = {
  name: stepJobName("0123456789ab"),
  mark: "runyard-mark-00112233445566778899aabbccddeeff",
  namespace: "runyard-steps",
  image: "busybox:1.36",
  owner: { runId: "run_01jabc", step: "build & test", attempt: 2, runnerId: "runner-a" },
  commands: [
    ["bash", "-c", "echo one"],
    ["bash", "-c", "make test"],
  ],
  env: { API_TOKEN: "s3cret-value", RUNYARD_OUTPUT: "/runyard/out/output" },
  files: { script: "echo from a file\n" },
  activeDeadlineSeconds: 90,
  killGraceMs: 5000,
  limits: { memoryBytes: 256 * 1024 * 1024, cpus: 0.5 },
};

type Pod = {
  securityContext: Record<string, unknown>;
  automountServiceAccountToken: boolean;
  restartPolicy: string;
  containers: Array<Record<string, unknown> & { env: Array<{ name: string; value?: string }> }>;
};

describe("a step attempt's Job and Secret", () => {
  const { job, secret, filePaths } = stepJobManifests(input);
  const spec = job.spec as { template: { spec: Pod }; [key: string]: unknown };
  const pod = spec.template.spec;

  it("are valid against the Kubernetes 1.33 schemas with no unknown field, the Secret owned by the Job", () => {
    expect(kubeSchemaProblems(job)).toEqual([]);
    const owned = {
      ...secret,
      metadata: { ...secret.metadata, ownerReferences: [ownedBy({ name: input.name, uid: "3f2a-uid" })] },
    };
    expect(kubeSchemaProblems(owned)).toEqual([]);
    // The check itself: a misspelt field and a wrong type are both caught.
    const typo = structuredClone(job) as unknown as { spec: { template: { spec: Record<string, unknown> } } };
    typo.spec.template.spec.restartPolcy = "Never";
    typo.spec.template.spec.automountServiceAccountToken = "no";
    expect(kubeSchemaProblems(typo as never)).toEqual([
      "/spec/template/spec/automountServiceAccountToken must be boolean",
      "/spec/template/spec/restartPolcy is not a field of Job",
    ]);
  });

  it("run once, with the deadline as a backstop, the pod's files and env all from the Secret's volume", () => {
    expect(spec).toMatchObject({ backoffLimit: 0, activeDeadlineSeconds: 90 });
    expect(spec.suspend).toBeUndefined();
    const volumes = (pod as unknown as { volumes: Array<{ name: string; secret?: { secretName: string } }> })
      .volumes;
    expect(volumes.find((volume) => volume.name === "in")?.secret?.secretName).toBe(input.name);
    expect(spec.ttlSecondsAfterFinished).toBeGreaterThan(0);
    expect(pod.restartPolicy).toBe("Never");
    expect(pod).toMatchObject({ terminationGracePeriodSeconds: 5, enableServiceLinks: false });
  });

  it("run the pod under the restricted security context of deploy/kubernetes, with no service-account token", () => {
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65534,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(pod.containers).toHaveLength(1);
    expect(pod.containers[0]!.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(pod.containers[0]!.resources).toEqual({ limits: { memory: "268435456", cpu: "500m" } });
  });

  it("keep the env out of the Job, values and names: the Secret holds them, as files the driver exports", () => {
    const text = JSON.stringify(job);
    expect(text).not.toContain("s3cret-value");
    expect(text).not.toContain("API_TOKEN");
    expect(text).not.toContain("make test");
    expect(text).not.toContain("echo from a file");
    expect(pod.containers[0]!.env).toBeUndefined();
    const data = secret.stringData as Record<string, string>;
    expect(data["env.API_TOKEN"]).toBe("s3cret-value");
    expect(envNameProblem("API_TOKEN")).toBeUndefined();
    expect(envNameProblem("odd name.x")).toContain("cannot be exported by a shell");
    expect(data["argv.1.2"]).toBe("make test");
    expect(data["file.script"]).toBe("echo from a file\n");
    expect(filePaths).toEqual({ script: "/runyard/in/file.script" });
    expect(secretBytes(secret)).toBeGreaterThan(100);
  });

  it("label both with the plain ids, hashing what a label may not hold and keeping it whole in an annotation", () => {
    const labels = (job.metadata as unknown as { labels: Record<string, string> }).labels;
    expect(labels).toMatchObject({
      "runyard.dev/run-id": "run_01jabc",
      "runyard.dev/attempt": "2",
      "runyard.dev/runner-id": "runner-a",
      "runyard.dev/component": "step",
    });
    expect(labels["runyard.dev/step"]).toMatch(/^h-[0-9a-f]{40}$/);
    expect(
      (job.metadata as unknown as { annotations: Record<string, string> }).annotations["runyard.dev/step"],
    ).toBe("build & test");
    expect(labelValue("a".repeat(63))).toBe("a".repeat(63));
    expect(labelValue("a".repeat(64))).toMatch(/^h-/);
    expect(labelValue("-x")).toMatch(/^h-/);
  });

  it("name the install on the Job, its pod and its Secret, and none from a server that names no install", () => {
    const owned = stepJobManifests({ ...input, owner: { ...input.owner, install: "0123456789abcdef" } });
    const labelsOf = (object: { metadata?: unknown }) =>
      (object.metadata as { labels: Record<string, string> }).labels;
    const template = (owned.job.spec as { template: { metadata: unknown } }).template;
    for (const object of [owned.job, template, owned.secret])
      expect(labelsOf(object)["runyard.dev/install"]).toBe("0123456789abcdef");
    expect(labelsOf(job)["runyard.dev/install"]).toBeUndefined();
  });

  it("give a step with no cwd an emptyDir to work in, and one with a cwd that folder of its image", () => {
    expect(pod.containers[0]!.workingDir).toBe("/work");
    const withCwd = stepJobManifests({ ...input, cwd: "/src/app" });
    const container = (withCwd.job.spec as { template: { spec: Pod } }).template.spec.containers[0]!;
    expect(container.workingDir).toBe("/src/app");
    expect(kubeSchemaProblems(withCwd.job)).toEqual([]);
  });
});
