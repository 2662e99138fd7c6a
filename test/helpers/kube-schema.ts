/**
 * Checks a Kubernetes object against the 1.33 OpenAPI schemas shipped by kubernetes-models, as
 * strictly as `kubectl apply` does: the schema's own errors, and every field the schema does not
 * know (the schemas do not set `additionalProperties: false`, so an unknown field would pass them
 * and be dropped by the API server in silence).
 */
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { Job } from "kubernetes-models/batch/v1/Job";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";

/** A schema-backed model per apiVersion and kind; a kind missing here is reported, not skipped. */
type ModelClass = new (data: never) => { validate(): void };
const models: Record<string, ModelClass> = {
  "apps/v1 Deployment": Deployment,
  "batch/v1 Job": Job,
  "networking.k8s.io/v1 NetworkPolicy": NetworkPolicy,
  "policy/v1 PodDisruptionBudget": PodDisruptionBudget,
  "rbac.authorization.k8s.io/v1 Role": Role,
  "rbac.authorization.k8s.io/v1 RoleBinding": RoleBinding,
  "v1 ConfigMap": ConfigMap,
  "v1 Secret": Secret,
  "v1 Service": Service,
  "v1 ServiceAccount": ServiceAccount,
};

interface SchemaError {
  instancePath: string;
  message?: string;
}

function schemaErrors(model: ModelClass, doc: unknown): SchemaError[] {
  try {
    new model(doc as never).validate();
    return [];
  } catch (error) {
    const errors = (error as { errors?: SchemaError[] }).errors;
    if (!errors) throw error;
    return errors;
  }
}

const pointer = (path: string[]): string =>
  path.map((part) => `/${part.replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Fails every type a schema can ask for; a field the schema knows is then reported at its path. */
const notAnyType = (): void => {};

function unknownFields(model: ModelClass, doc: unknown): string[] {
  const unknown: string[] = [];
  const visit = (node: unknown, path: string[]): void => {
    if (Array.isArray(node)) {
      for (const [index, item] of node.entries()) visit(item, [...path, String(index)]);
      return;
    }
    if (!isObject(node)) return;
    for (const [key, value] of Object.entries(node)) {
      const at = [...path, key];
      // Free-form maps: their keys are data, not fields.
      const parentKey = path[path.length - 1];
      if (
        parentKey &&
        ["labels", "annotations", "stringData", "data", "limits", "requests"].includes(parentKey)
      )
        continue;
      const probe = structuredClone(doc);
      let parent = probe as Record<string, unknown>;
      for (const part of path) parent = parent[part] as Record<string, unknown>;
      parent[key] = notAnyType;
      const here = pointer(at);
      const seen = schemaErrors(model, probe).some(
        (error) => error.instancePath === here || error.instancePath.startsWith(`${here}/`),
      );
      if (seen) visit(value, at);
      else unknown.push(here);
    }
  };
  visit(doc, []);
  return unknown;
}

/** Every problem with one object, as `path message` lines; [] when the API server would take it whole. */
export function kubeSchemaProblems(doc: { apiVersion: string; kind: string; metadata?: unknown }): string[] {
  const model = models[`${doc.apiVersion} ${doc.kind}`];
  if (!model) return [`no schema for ${doc.apiVersion} ${doc.kind}: add its model to \`models\``];
  return [
    ...schemaErrors(model, doc).map((error) => `${error.instancePath || "/"} ${error.message}`),
    ...unknownFields(model, doc).map((path) => `${path} is not a field of ${doc.kind}`),
  ];
}
