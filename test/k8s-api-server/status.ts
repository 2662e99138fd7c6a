/**
 * The API server's error bodies: every failure is a `Status` object (kind Status, status Failure,
 * code, reason, message, details) with the HTTP status of its code, worded as kube-apiserver
 * words them, since clients (`@kubernetes/client-node`, kubectl) and runyard's messages read them.
 */
import type { ResourceInfo } from "./resources.js";

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusBody {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure" | "Success";
  message: string;
  reason: string;
  details?: { name?: string; group?: string; kind?: string; causes?: StatusCause[] };
  code: number;
}

/** A failure to answer with: thrown anywhere below a route, sent by the server. */
export class StatusError extends Error {
  constructor(readonly body: StatusBody) {
    super(body.message);
  }
  get code(): number {
    return this.body.code;
  }
}

const status = (
  code: number,
  reason: string,
  message: string,
  details?: StatusBody["details"],
): StatusError =>
  new StatusError({
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  });

/** `jobs.batch` or `pods`: how messages name a resource. */
export const qualified = (info: ResourceInfo): string =>
  info.group ? `${info.resource}.${info.group}` : info.resource;

export const notFound = (info: ResourceInfo, name: string): StatusError =>
  status(404, "NotFound", `${qualified(info)} "${name}" not found`, {
    name,
    ...(info.group ? { group: info.group } : {}),
    kind: info.resource,
  });

export const namespaceNotFound = (namespace: string): StatusError =>
  status(404, "NotFound", `namespaces "${namespace}" not found`, { name: namespace, kind: "namespaces" });

export const alreadyExists = (info: ResourceInfo, name: string): StatusError =>
  status(409, "AlreadyExists", `${qualified(info)} "${name}" already exists`, {
    name,
    ...(info.group ? { group: info.group } : {}),
    kind: info.resource,
  });

export const conflict = (info: ResourceInfo, name: string, why: string): StatusError =>
  status(409, "Conflict", `Operation cannot be fulfilled on ${qualified(info)} "${name}": ${why}`, {
    name,
    ...(info.group ? { group: info.group } : {}),
    kind: info.resource,
  });

/** 422: `Job.batch "x" is invalid: field: Required value, ...`, one cause per field. */
export const invalid = (info: ResourceInfo, name: string, causes: StatusCause[]): StatusError => {
  const kind = info.group ? `${info.kind}.${info.group}` : info.kind;
  const list = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message));
  const joined = list.length === 1 ? list[0] : `[${list.join(", ")}]`;
  return status(422, "Invalid", `${kind} "${name}" is invalid: ${joined}`, {
    name,
    ...(info.group ? { group: info.group } : {}),
    kind: info.kind,
    causes,
  });
};

export const badRequest = (message: string): StatusError => status(400, "BadRequest", message);

export const unauthorized = (): StatusError => status(401, "Unauthorized", "Unauthorized");

/**
 * 403 as RBAC words it: `jobs.batch "x" is forbidden: User "system:serviceaccount:ns:sa" cannot
 * delete resource "jobs" in API group "batch" in the namespace "ns"`.
 */
export const forbidden = (
  user: string,
  verb: string,
  info: ResourceInfo,
  subresource: string | undefined,
  namespace: string | undefined,
  name: string | undefined,
): StatusError => {
  const resource = subresource ? `${info.resource}/${subresource}` : info.resource;
  const where = namespace ? `in the namespace "${namespace}"` : "at the cluster scope";
  const subject = name ? `${qualified(info)} "${name}"` : qualified(info);
  return status(
    403,
    "Forbidden",
    `${subject} is forbidden: User "${user}" cannot ${verb} resource "${resource}" in API group "${info.group}" ${where}`,
    { ...(name ? { name } : {}), ...(info.group ? { group: info.group } : {}), kind: info.resource },
  );
};

export const methodNotAllowed = (): StatusError =>
  status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");

export const pathNotFound = (): StatusError =>
  status(404, "NotFound", "the server could not find the requested resource");

export const internal = (message: string): StatusError =>
  status(500, "InternalError", `Internal error occurred: ${message}`);
