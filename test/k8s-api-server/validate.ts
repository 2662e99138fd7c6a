/**
 * What the API server refuses with 422 Invalid: anything the Kubernetes 1.33 OpenAPI schemas
 * shipped by kubernetes-models refuse (required fields, types, enums, formats), plus the checks
 * kube-apiserver makes beyond the schema that a client meets first (object and label names, a
 * container's image, a Job pod's restartPolicy, a volume mount's subPath, Secret data).
 */
import { Job } from "kubernetes-models/batch/v1/Job";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Pod } from "kubernetes-models/v1/Pod";
import { Secret } from "kubernetes-models/v1/Secret";
import type { StatusCause } from "./status.js";

type ModelClass = new (data: never) => { validate(): void };
const models: Record<string, ModelClass> = {
  Job,
  Pod,
  Secret,
  NetworkPolicy,
  Namespace,
};

interface AjvError {
  instancePath: string;
  message?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

/** `/spec/template/spec/containers/0/name` as the API names it: `spec.template.spec.containers[0].name`. */
export function fieldPath(pointer: string): string {
  return pointer
    .split("/")
    .slice(1)
    .map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"))
    .reduce((path, part) => (/^\d+$/.test(part) ? `${path}[${part}]` : path ? `${path}.${part}` : part), "");
}

function causeOf(error: AjvError, object: unknown): StatusCause {
  const valueAt = (pointer: string): unknown =>
    pointer
      .split("/")
      .slice(1)
      .reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], object);
  if (error.keyword === "required") {
    const missing = String(error.params?.missingProperty ?? "");
    const field = fieldPath(`${error.instancePath}/${missing}`);
    return { reason: "FieldValueRequired", message: "Required value", field };
  }
  const field = fieldPath(error.instancePath);
  const value = JSON.stringify(valueAt(error.instancePath));
  if (error.keyword === "enum") {
    const allowed = (error.params?.allowedValues as unknown[] | undefined) ?? [];
    return {
      reason: "FieldValueNotSupported",
      message: `Unsupported value: ${value}: supported values: ${allowed.map((v) => JSON.stringify(v)).join(", ")}`,
      field,
    };
  }
  return {
    reason: "FieldValueInvalid",
    message: `Invalid value: ${value}: ${error.message ?? "invalid"}`,
    field,
  };
}

const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const labelName = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

function nameCauses(name: string, field: string, label: boolean): StatusCause[] {
  const pattern = label ? dns1123Label : dns1123Subdomain;
  const max = label ? 63 : 253;
  if (name.length > max) {
    return [
      {
        reason: "FieldValueInvalid",
        message: `Invalid value: "${name}": must be no more than ${max} characters`,
        field,
      },
    ];
  }
  if (!pattern.test(name)) {
    return [
      {
        reason: "FieldValueInvalid",
        message: `Invalid value: "${name}": a lowercase RFC 1123 ${label ? "label" : "subdomain"} must consist of lower case alphanumeric characters, '-'${label ? "" : " or '.'"}, and must start and end with an alphanumeric character`,
        field,
      },
    ];
  }
  return [];
}

function labelCauses(labels: Record<string, unknown> | undefined, field: string): StatusCause[] {
  const causes: StatusCause[] = [];
  for (const [key, value] of Object.entries(labels ?? {})) {
    const slash = key.lastIndexOf("/");
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const name = slash >= 0 ? key.slice(slash + 1) : key;
    if (
      name.length > 63 ||
      !labelName.test(name) ||
      (prefix !== undefined && (prefix.length > 253 || !dns1123Subdomain.test(prefix)))
    ) {
      causes.push({
        reason: "FieldValueInvalid",
        message: `Invalid value: "${key}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
        field,
      });
    }
    if (typeof value !== "string" || value.length > 63 || !labelValue.test(value)) {
      causes.push({
        reason: "FieldValueInvalid",
        message: `Invalid value: ${JSON.stringify(value)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
        field,
      });
    }
  }
  return causes;
}

interface ContainerLike {
  name?: string;
  image?: string;
  volumeMounts?: { name?: string; subPath?: string; mountPath?: string }[];
}

function podSpecCauses(spec: Record<string, unknown> | undefined, at: string, inJob: boolean): StatusCause[] {
  if (!spec) return [];
  const causes: StatusCause[] = [];
  const volumes = new Set(((spec.volumes as { name?: string }[] | undefined) ?? []).map((v) => v.name));
  for (const list of ["initContainers", "containers"]) {
    const containers = (spec[list] as ContainerLike[] | undefined) ?? [];
    const seen = new Set<string>();
    for (const [index, container] of containers.entries()) {
      const here = `${at}.${list}[${index}]`;
      if (typeof container.name === "string") {
        causes.push(...nameCauses(container.name, `${here}.name`, true));
        if (seen.has(container.name)) {
          causes.push({
            reason: "FieldValueDuplicate",
            message: `Duplicate value: "${container.name}"`,
            field: `${here}.name`,
          });
        }
        seen.add(container.name);
      }
      if (!container.image)
        causes.push({ reason: "FieldValueRequired", message: "Required value", field: `${here}.image` });
      for (const [m, mount] of (container.volumeMounts ?? []).entries()) {
        if (mount.name !== undefined && !volumes.has(mount.name)) {
          causes.push({
            reason: "FieldValueNotFound",
            message: `Not found: "${mount.name}"`,
            field: `${here}.volumeMounts[${m}].name`,
          });
        }
        const sub = mount.subPath ?? "";
        if (sub.startsWith("/") || sub.split("/").includes("..")) {
          causes.push({
            reason: "FieldValueInvalid",
            message: `Invalid value: "${sub}": must be a relative path and must not contain '..'`,
            field: `${here}.volumeMounts[${m}].subPath`,
          });
        }
      }
    }
  }
  if (inJob) {
    const policy = spec.restartPolicy;
    if (policy === undefined)
      causes.push({ reason: "FieldValueRequired", message: "Required value", field: `${at}.restartPolicy` });
    else if (policy !== "Never" && policy !== "OnFailure") {
      causes.push({
        reason: "FieldValueNotSupported",
        message: `Unsupported value: "${policy}": supported values: "OnFailure", "Never"`,
        field: `${at}.restartPolicy`,
      });
    }
  }
  return causes;
}

/** Every reason the API server would refuse `object` (a Job, Pod, Secret, NetworkPolicy or Namespace); [] when it takes it. */
export function validationCauses(object: Record<string, unknown>): StatusCause[] {
  const kind = String(object.kind);
  const model = models[kind];
  const causes: StatusCause[] = [];
  if (model) {
    try {
      new model(object as never).validate();
    } catch (error) {
      const errors = (error as { errors?: AjvError[] }).errors;
      if (!errors) throw error;
      causes.push(...errors.map((e) => causeOf(e, object)));
    }
  }
  const metadata = (object.metadata ?? {}) as Record<string, unknown>;
  if (typeof metadata.name === "string") {
    causes.push(...nameCauses(metadata.name, "metadata.name", kind === "Namespace"));
  }
  causes.push(...labelCauses(metadata.labels as Record<string, unknown> | undefined, "metadata.labels"));
  const spec = object.spec as Record<string, unknown> | undefined;
  if (kind === "Pod") causes.push(...podSpecCauses(spec, "spec", false));
  if (kind === "Job") {
    const template = spec?.template as Record<string, unknown> | undefined;
    const templateMeta = (template?.metadata ?? {}) as Record<string, unknown>;
    causes.push(
      ...labelCauses(
        templateMeta.labels as Record<string, unknown> | undefined,
        "spec.template.metadata.labels",
      ),
    );
    causes.push(
      ...podSpecCauses(template?.spec as Record<string, unknown> | undefined, "spec.template.spec", true),
    );
  }
  if (kind === "Secret") {
    const data = (object.data ?? {}) as Record<string, unknown>;
    let size = 0;
    for (const [key, value] of Object.entries(data)) {
      if (!/^[-._a-zA-Z0-9]+$/.test(key)) {
        causes.push({
          reason: "FieldValueInvalid",
          message: `Invalid value: "${key}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'`,
          field: "data",
        });
      }
      if (typeof value === "string" && !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
        causes.push({
          reason: "FieldValueInvalid",
          message: "Invalid value: illegal base64 data",
          field: `data[${key}]`,
        });
      }
      size += typeof value === "string" ? Buffer.from(value, "base64").length : 0;
    }
    for (const value of Object.values((object.stringData ?? {}) as Record<string, unknown>)) {
      size += typeof value === "string" ? Buffer.byteLength(value) : 0;
    }
    if (size > 1024 * 1024) {
      causes.push({
        reason: "FieldValueTooLong",
        message: "Too long: must have at most 1048576 bytes",
        field: "data",
      });
    }
  }
  return causes;
}
