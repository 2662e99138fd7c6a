import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { podEnd } from "./pod-end.js";

const terminated = (exitCode: number, reason: string) => ({
  name: "turn",
  image: "agent",
  imageID: "",
  ready: false,
  restartCount: 0,
  state: { terminated: { exitCode, reason } },
});

function pod(status: V1Pod["status"], deleting = false): V1Pod {
  return {
    metadata: {
      name: "runyard-1-abc",
      namespace: "agents",
      ...(deleting ? { deletionTimestamp: new Date() } : {}),
    },
    spec: { containers: [{ name: "turn", resources: { limits: { memory: "1Gi" } } }] },
    status,
  };
}

describe("podEnd", () => {
  it("waits for the pod's phase: a container's exit alone may yet be an eviction", () => {
    expect(
      podEnd(pod({ phase: "Running", containerStatuses: [terminated(137, "Error")] }), "j"),
    ).toBeUndefined();
    const evicted = podEnd(
      pod({
        phase: "Failed",
        reason: "Evicted",
        message: "low on memory",
        containerStatuses: [terminated(137, "Error")],
      }),
      "j",
    );
    expect(evicted?.fault?.code).toBe("KUBE_POD_EVICTED");
  });

  it("types an OOMKilled container with its limit", () => {
    const end = podEnd(pod({ phase: "Failed", containerStatuses: [terminated(137, "OOMKilled")] }), "j");
    expect(end?.fault?.code).toBe("KUBE_POD_OOM_KILLED");
    expect(end?.fault?.message).toContain("1Gi");
  });

  it("a pod that failed while being deleted was deleted by someone else", () => {
    expect(() =>
      podEnd(pod({ phase: "Failed", containerStatuses: [terminated(143, "Error")] }, true), "j"),
    ).toThrow(expect.objectContaining({ code: "KUBE_JOB_DELETED" }));
  });

  it("gives the exit code of a pod that ended by itself", () => {
    expect(podEnd(pod({ phase: "Succeeded", containerStatuses: [terminated(0, "Completed")] }), "j")).toEqual(
      {
        exitCode: 0,
        reason: "Completed",
      },
    );
    expect(podEnd(pod({ phase: "Failed", containerStatuses: [terminated(3, "Error")] }), "j")).toMatchObject({
      exitCode: 3,
    });
    expect(
      podEnd(pod({ phase: "Succeeded", containerStatuses: [terminated(0, "Completed")] }, true), "j")
        ?.exitCode,
    ).toBe(0);
  });
});
