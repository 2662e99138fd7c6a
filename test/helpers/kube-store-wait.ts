/**
 * Waits on the scripted Kubernetes API server's own record of changes (its store's listeners, what
 * a watch is fed from) instead of listing its objects on an interval: a wait ends on the change
 * that settles it, and an object that passes through a state and leaves it between two looks (a
 * pod Running, then deleted at a turn's timeout) is still seen.
 */
import type { Change, KubeObject } from "../k8s-api-server/objects.js";
import type { ScriptedKubernetes } from "../k8s-api-server/server.js";

/**
 * The first object of `resource` in `namespace` that `test` accepts: one stored now, or the
 * first a later change (added or modified) carries.
 */
export function nextObject(
  k8s: ScriptedKubernetes,
  resource: string,
  namespace: string,
  test: (object: KubeObject) => boolean,
  timeoutMs = 60_000,
): Promise<KubeObject> {
  const now = k8s.list(resource, namespace).find(test);
  if (now) return Promise.resolve(now);
  return onChange(
    k8s,
    `no ${resource} in ${namespace} as expected after ${timeoutMs} ms`,
    (change) =>
      change.type !== "DELETED" &&
      change.resource === resource &&
      change.object.metadata.namespace === namespace &&
      test(change.object)
        ? change.object
        : undefined,
    timeoutMs,
  );
}

/** Resolves once `holds()` is true: now, or after the change of the store that makes it so. */
export async function storeHolds(
  k8s: ScriptedKubernetes,
  what: string,
  holds: () => boolean,
  timeoutMs = 60_000,
): Promise<void> {
  if (holds()) return;
  await onChange(k8s, `${what}: not so after ${timeoutMs} ms`, () => (holds() ? true : undefined), timeoutMs);
}

function onChange<T>(
  k8s: ScriptedKubernetes,
  failure: string,
  settles: (change: Change) => T | undefined,
  timeoutMs: number,
): Promise<T> {
  const { listeners } = k8s.cluster.store;
  return new Promise<T>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      const at = listeners.indexOf(listener);
      if (at >= 0) listeners.splice(at, 1);
    };
    const listener = (change: Change) => {
      const value = settles(change);
      if (value === undefined) return;
      done();
      resolve(value);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(failure));
    }, timeoutMs);
    listeners.push(listener);
  });
}

/** Calls `listener` with every later change of the store (as a watch of everything sees it); the stop. */
export function onStoreChange(k8s: ScriptedKubernetes, listener: (change: Change) => void): () => void {
  const { listeners } = k8s.cluster.store;
  listeners.push(listener);
  return () => {
    const at = listeners.indexOf(listener);
    if (at >= 0) listeners.splice(at, 1);
  };
}
