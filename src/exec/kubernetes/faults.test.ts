import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { kubeFault } from "./faults.js";

const call = {
  verb: "create",
  resource: "jobs",
  namespace: "agents",
  server: "https://10.0.0.1:6443",
} as const;
const status = (code: number, reason: string, message: string, kind?: string) =>
  new ApiException(
    code,
    "refused",
    JSON.stringify({ kind: "Status", code, reason, message, details: { kind } }),
    {},
  );

describe("a fault of the Kubernetes API", () => {
  it("unreachable names the server's URL", () => {
    const error = kubeFault(
      Object.assign(new Error("connect ECONNREFUSED 10.0.0.1:6443"), { code: "ECONNREFUSED" }),
      call,
    );
    expect(error.code).toBe("KUBE_UNREACHABLE");
    expect(error.message).toContain("https://10.0.0.1:6443");
  });

  it("403 names the verb, the resource and the Role that grants them", () => {
    const error = kubeFault(
      status(403, "Forbidden", 'jobs.batch is forbidden: User "x" cannot create resource "jobs"'),
      call,
    );
    expect(error.code).toBe("KUBE_FORBIDDEN");
    expect(error.message).toContain("may not create jobs in namespace agents");
    expect(error.hint).toContain("deploy/kubernetes/runner-role.yaml");
  });

  it("401 is the credentials", () => {
    expect(kubeFault(status(401, "Unauthorized", "Unauthorized"), call).code).toBe("KUBE_UNAUTHORIZED");
  });

  it("a 404 of the namespace, or a 403 reading it, is a missing namespace that names both causes", () => {
    const missing = kubeFault(status(404, "NotFound", 'namespaces "agents" not found', "namespaces"), call);
    expect(missing.code).toBe("KUBE_NAMESPACE_MISSING");
    const hidden = kubeFault(status(403, "Forbidden", "cannot get namespaces"), {
      ...call,
      verb: "get",
      resource: "namespaces",
    });
    expect(hidden.code).toBe("KUBE_NAMESPACE_MISSING");
    expect(hidden.message).toContain("does not exist, or the runner may not see it");
  });

  it("anything else keeps the API's own message", () => {
    const error = kubeFault(
      status(422, "Invalid", 'Job.batch "x" is invalid: spec.template.spec.containers: Required value'),
      call,
    );
    expect(error.code).toBe("KUBE_API_ERROR");
    expect(error.message).toContain("Required value");
  });
});
