/**
 * The scripted API server's storage: objects by resource, namespace and name, one
 * resourceVersion counter for all of them (as etcd's revision), and the change history that
 * watches replay from a resourceVersion and then follow live.
 */
import type { ResourceInfo } from "./resources.js";

/** Any Kubernetes object as stored: metadata always filled in by the server. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  generateName?: string;
}

export type WatchType = "ADDED" | "MODIFIED" | "DELETED";

export interface Change {
  type: WatchType;
  resource: string;
  object: KubeObject;
  revision: number;
}

export interface Watcher {
  resource: string;
  namespace?: string;
  matches(object: KubeObject): boolean;
  send(change: Change): void;
}

const keyOf = (resource: string, namespace: string | undefined, name: string): string =>
  `${resource}/${namespace ?? ""}/${name}`;

export class ObjectStore {
  private readonly objects = new Map<string, KubeObject>();
  private readonly history: Change[] = [];
  private readonly watchers = new Set<Watcher>();
  private revision = 1;
  /** Called after every change, for the controllers. */
  readonly listeners: ((change: Change) => void)[] = [];

  get currentRevision(): number {
    return this.revision;
  }

  get(info: ResourceInfo, namespace: string | undefined, name: string): KubeObject | undefined {
    const found = this.objects.get(keyOf(info.resource, info.namespaced ? namespace : undefined, name));
    return found && structuredClone(found);
  }

  list(info: ResourceInfo, namespace?: string): KubeObject[] {
    const out: KubeObject[] = [];
    for (const object of this.objects.values()) {
      if (object.kind !== info.kind) continue;
      if (namespace !== undefined && info.namespaced && object.metadata.namespace !== namespace) continue;
      out.push(structuredClone(object));
    }
    return out.sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
  }

  /** Every object of every resource (for the garbage collector). */
  all(): KubeObject[] {
    return [...this.objects.values()].map((o) => structuredClone(o));
  }

  /** Stores a new object (its metadata already filled in) and tells watchers. */
  add(info: ResourceInfo, object: KubeObject): KubeObject {
    object.metadata.resourceVersion = String(++this.revision);
    this.objects.set(
      keyOf(info.resource, object.metadata.namespace, object.metadata.name),
      structuredClone(object),
    );
    this.emit({ type: "ADDED", resource: info.resource, object, revision: this.revision });
    return structuredClone(object);
  }

  /** Replaces a stored object; `change` edits a copy. Undefined when it is gone. */
  update(
    info: ResourceInfo,
    namespace: string | undefined,
    name: string,
    change: (object: KubeObject) => void,
  ): KubeObject | undefined {
    const key = keyOf(info.resource, info.namespaced ? namespace : undefined, name);
    const current = this.objects.get(key);
    if (!current) return undefined;
    const next = structuredClone(current);
    change(next);
    if (JSON.stringify(next) === JSON.stringify(current)) return structuredClone(current);
    next.metadata.resourceVersion = String(++this.revision);
    this.objects.set(key, next);
    this.emit({
      type: "MODIFIED",
      resource: info.resource,
      object: structuredClone(next),
      revision: this.revision,
    });
    return structuredClone(next);
  }

  /** Removes an object for good and tells watchers (DELETED carries its last state). */
  remove(info: ResourceInfo, namespace: string | undefined, name: string): KubeObject | undefined {
    const key = keyOf(info.resource, info.namespaced ? namespace : undefined, name);
    const current = this.objects.get(key);
    if (!current) return undefined;
    this.objects.delete(key);
    current.metadata.resourceVersion = String(++this.revision);
    this.emit({
      type: "DELETED",
      resource: info.resource,
      object: structuredClone(current),
      revision: this.revision,
    });
    return current;
  }

  /**
   * Follows changes: first those after `fromRevision` (or, without one, every matching object as
   * ADDED, as the API server does for a watch without resourceVersion), then live ones.
   */
  watch(watcher: Watcher, info: ResourceInfo, fromRevision: number | undefined): () => void {
    if (fromRevision === undefined) {
      for (const object of this.list(info, watcher.namespace)) {
        if (watcher.matches(object)) {
          watcher.send({ type: "ADDED", resource: info.resource, object, revision: this.revision });
        }
      }
    } else {
      for (const change of this.history) {
        if (change.revision > fromRevision && this.concerns(watcher, change)) watcher.send(change);
      }
    }
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  private concerns(watcher: Watcher, change: Change): boolean {
    if (change.resource !== watcher.resource) return false;
    if (watcher.namespace !== undefined && change.object.metadata.namespace !== watcher.namespace)
      return false;
    return watcher.matches(change.object);
  }

  private emit(change: Change): void {
    this.history.push(change);
    if (this.history.length > 10_000) this.history.splice(0, 1000);
    for (const watcher of this.watchers) {
      if (this.concerns(watcher, change)) watcher.send(structuredClone(change));
    }
    // A copy: a listener may remove itself (a test's waitFor) while this runs.
    for (const listener of [...this.listeners]) listener(change);
  }
}

/**
 * A label selector as `?labelSelector=` gives it: `a=b`, `a==b`, `a!=b`, `a`, `!a`,
 * `a in (x,y)`, `a notin (x,y)`, comma-separated. Undefined when it does not parse.
 */
export function parseLabelSelector(text: string): ((labels: Record<string, string>) => boolean) | undefined {
  const terms: ((labels: Record<string, string>) => boolean)[] = [];
  const parts = text.match(/[^,(]+(\([^)]*\))?/g) ?? [];
  for (const raw of parts) {
    const part = raw.trim();
    if (!part) continue;
    let m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part);
    if (m) {
      const [, key, op, list] = m as unknown as [string, string, string, string];
      const values = list.split(",").map((v) => v.trim());
      terms.push((labels) =>
        op === "in"
          ? values.includes(labels[key] ?? "\0")
          : !(key in labels) || !values.includes(labels[key]!),
      );
      continue;
    }
    m = /^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/.exec(part);
    if (m) {
      const [, key, op, value] = m as unknown as [string, string, string, string];
      terms.push((labels) => (op === "!=" ? labels[key] !== value : labels[key] === value));
      continue;
    }
    m = /^(!?)([\w./-]+)$/.exec(part);
    if (m) {
      const [, not, key] = m as unknown as [string, string, string];
      terms.push((labels) => (not ? !(key in labels) : key in labels));
      continue;
    }
    return undefined;
  }
  return (labels) => terms.every((term) => term(labels));
}

/** `metadata.name=x`, `metadata.namespace=y`, `status.phase=Running` (the fields servers index). */
export function parseFieldSelector(text: string): ((object: KubeObject) => boolean) | undefined {
  const terms: ((object: KubeObject) => boolean)[] = [];
  for (const raw of text.split(",")) {
    const part = raw.trim();
    if (!part) continue;
    const m = /^([\w.]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) return undefined;
    const [, field, op, value] = m as unknown as [string, string, string, string];
    const read = (object: KubeObject): unknown =>
      field
        .split(".")
        .reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], object);
    terms.push((object) =>
      op === "!=" ? String(read(object) ?? "") !== value : String(read(object) ?? "") === value,
    );
  }
  return (object) => terms.every((term) => term(object));
}
