import { adminToken, api } from "../helpers/server.js";
import { answered, hookName, member, secretName, workflowName } from "./upgrade-data.js";

/*
 * Every route of an OpenAPI document called once on a replica with an admin token: what a mixed
 * fleet must never answer is a 5xx (a replica that misreads a row the other wrote, a column it
 * does not know). Path parameters name the upgrade data's real objects; a DELETE of a secret,
 * saved workflow, hook, user or token, and a password set, name objects made for the sweep, so the
 * data reads as before after it.
 */

export interface OpenApiDocument {
  paths: Record<string, Record<string, { requestBody?: unknown }>>;
}

const methods = new Set(["get", "post", "put", "patch", "delete"]);

/** An id no object has: what a path parameter of an object the data lacks is filled with. */
const madeUp = "made-up-0123456789";

/** The real objects the sweep names. */
export interface SweptObjects {
  runId: string;
  hookId: string;
}

/** Objects of the sweep's own, made through the swept replica, for the calls that remove or change. */
interface Doomed {
  secret: string;
  workflow: string;
  hook: string;
  username: string;
  /** A user whose password the sweep sets (the other is removed first, in the document's order). */
  passwordUser: string;
  tokenId: string;
}

const doomedWorkflow = (name: string) => `version: v0.1
name: ${name}
steps:
  - name: never
    action: cmd.run
    args:
      cmd: "true"
`;

async function makeDoomed(url: string, label: string): Promise<Doomed> {
  const doomed = {
    secret: `SWEEP_${label.toUpperCase()}`,
    workflow: `sweep-${label}`,
    hook: `sweep-hook-${label}`,
    username: `sweep-${label}`,
    passwordUser: `sweep-${label}-password`,
  };
  answered(
    await api(url, "PUT", `/api/secrets/${doomed.secret}`, { value: "doomed" }),
    201,
    "a sweep secret",
  );
  answered(
    await api(url, "POST", "/api/workflows", {
      name: doomed.workflow,
      workflow: doomedWorkflow(doomed.workflow),
    }),
    201,
    "a sweep workflow",
  );
  const hook = { name: doomed.hook, workflow: workflowName, secret: "sweep-hook-secret-0123456789" };
  answered(await api(url, "POST", "/api/hooks", hook), 201, "a sweep hook");
  for (const username of [doomed.username, doomed.passwordUser]) {
    const user = { username, role: "member", tenant_id: member.tenant };
    answered(await api(url, "POST", "/api/users", user), 201, "a sweep user");
  }
  const token = { kind: "runner", name: `sweep ${label}` };
  const { id } = answered(await api<{ id: string }>(url, "POST", "/api/tokens", token), 201, "a sweep token");
  return { ...doomed, tokenId: id };
}

/** What `{param}` of `method path` is filled with. */
function parameter(param: string, method: string, path: string, real: SweptObjects, doomed: Doomed): string {
  const removes = method === "delete";
  const under = (prefix: string) => path.startsWith(prefix);
  switch (param) {
    case "id":
      if (under("/api/runs/")) return real.runId;
      if (under("/api/tokens/") && removes) return doomed.tokenId;
      return madeUp;
    case "step":
      return "report";
    case "username":
      if (path === "/api/users/{username}/password") return doomed.passwordUser;
      return under("/api/users/") && removes ? doomed.username : member.username;
    case "tenant":
      return member.tenant;
    case "name":
      if (under("/api/secrets/")) return removes ? doomed.secret : secretName;
      if (under("/api/workflows/")) return removes ? doomed.workflow : workflowName;
      // POST /api/hooks/{name} is a delivery: it goes to the hook's id (and is unsigned here).
      if (under("/api/hooks/")) return method === "post" ? real.hookId : removes ? doomed.hook : hookName;
      return madeUp;
    default:
      return madeUp;
  }
}

/**
 * Calls every route of `document` on `url` once; returns each answer of 5xx (or none at all), as
 * `METHOD path -> status body`. `label` names the sweep's own objects apart from another sweep's.
 */
export async function sweepRoutes(
  url: string,
  document: OpenApiDocument,
  real: SweptObjects,
  label: string,
): Promise<string[]> {
  const doomed = await makeDoomed(url, label);
  const offenders: string[] = [];
  for (const [template, operations] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      if (!methods.has(method)) continue;
      const path = template.replace(/\{(\w+)\}/g, (_, param: string) =>
        encodeURIComponent(parameter(param, method, template, real, doomed)),
      );
      const line = `${method.toUpperCase()} ${template} as ${path}`;
      try {
        const response = await fetch(new URL(path, url), {
          method: method.toUpperCase(),
          headers: {
            authorization: `Bearer ${adminToken}`,
            ...(operation.requestBody ? { "content-type": "application/json" } : {}),
          },
          ...(operation.requestBody ? { body: "{}" } : {}),
          // A net for a route that never answers (a finished run's event stream ends by itself).
          signal: AbortSignal.timeout(30_000),
        });
        const body = await response.text();
        if (response.status >= 500) offenders.push(`${line} -> ${response.status} ${body.slice(0, 2000)}`);
      } catch (error) {
        offenders.push(`${line} -> no answer: ${String(error)}`);
      }
    }
  }
  return offenders;
}
