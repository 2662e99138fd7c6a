import { type KubernetesObject, Watch } from "@kubernetes/client-node";
import type { RunyardError } from "../../core/errors.js";
import type { KubeCredentials } from "./credentials.js";
import type { KubeCall } from "./faults.js";

/** What a watch needs of a cluster (cluster.ts's KubeCluster is one): a list, a path, its faults. */
export interface WatchedCluster {
  readonly credentials: Pick<KubeCredentials, "config">;
  list(resource: "pods" | "jobs", labelSelector: string): Promise<unknown>;
  collectionPath(resource: "pods" | "jobs"): string;
  fault(error: unknown, call: Pick<KubeCall, "verb" | "resource">): RunyardError;
}

/** What the decider sees: the objects that match, by name, as the API last told of them. */
export type ObjectsByName<T> = ReadonlyMap<string, T>;

/**
 * Lists the objects of `resource` (a namespaced collection: `pods`, `jobs`) that match
 * `labelSelector`, then watches them from the list's resourceVersion, asking `decide` after the
 * list and after every change until it answers; a watch the server ends (as servers do after a
 * while) or expires (410) is followed by a fresh list. Aborting `signal` rejects with its reason.
 * This is the list-then-watch every Kubernetes controller does, for one question at a time.
 */
export async function watchUntil<T extends KubernetesObject, R>(
  cluster: WatchedCluster,
  resource: "pods" | "jobs",
  labelSelector: string,
  decide: (objects: ObjectsByName<T>) => R | undefined,
  signal: AbortSignal,
): Promise<R> {
  const watch = new Watch(cluster.credentials.config);
  for (;;) {
    if (signal.aborted) throw signal.reason;
    const listed = (await cluster.list(resource, labelSelector)) as {
      items: T[];
      metadata?: { resourceVersion?: string };
    };
    const objects = new Map<string, T>();
    for (const item of listed.items) objects.set(item.metadata?.name ?? "", item);
    const first = decide(objects);
    if (first !== undefined) return first;
    const outcome = await new Promise<{ decided: R } | { relist: true }>((resolve, reject) => {
      let controller: AbortController | undefined;
      let settled = false;
      const finish = (value: { decided: R } | { relist: true } | { error: unknown }) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        controller?.abort();
        if ("error" in value) reject(value.error);
        else resolve(value);
      };
      const onAbort = () => finish({ error: signal.reason });
      signal.addEventListener("abort", onAbort, { once: true });
      // Aborted while the list was on its way: the event has fired already, and a watch opened
      // now would wait on a pod that runs for as long as its step (a cancel seen to hang).
      if (signal.aborted) {
        onAbort();
        return;
      }
      watch
        .watch(
          cluster.collectionPath(resource),
          { labelSelector, resourceVersion: listed.metadata?.resourceVersion, allowWatchBookmarks: true },
          (type, object: T) => {
            if (settled) return;
            if (type === "ERROR") {
              // A watch too old to resume (410 Gone): list again.
              finish({ relist: true });
              return;
            }
            if (type === "BOOKMARK") return;
            const name = object.metadata?.name ?? "";
            if (type === "DELETED") objects.delete(name);
            else objects.set(name, object);
            let decided: R | undefined;
            try {
              decided = decide(objects);
            } catch (error) {
              finish({ error });
              return;
            }
            if (decided !== undefined) finish({ decided });
          },
          (error: unknown) => {
            if (!error || (error as Error).name === "AbortError") finish({ relist: true });
            else finish({ error: cluster.fault(error, { verb: "watch", resource }) });
          },
        )
        .then(
          (started) => {
            controller = started;
            if (settled) started.abort();
          },
          (error: unknown) => finish({ error: cluster.fault(error, { verb: "watch", resource }) }),
        );
    });
    if ("decided" in outcome) return outcome.decided;
  }
}
