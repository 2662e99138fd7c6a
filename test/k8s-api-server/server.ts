/**
 * A scripted Kubernetes API server for tests: no cluster can run where runyard is built, so as
 * test/forge-server/ stands in for GitHub, this speaks kube-apiserver's REST paths and shapes to
 * the real clients (`@kubernetes/client-node`, kubectl) over HTTPS on 127.0.0.1 (its own CA, tls.ts)
 * with bearer tokens: discovery, create / get / list / watch / delete of Jobs, Pods, Secrets and
 * NetworkPolicies (and get of Namespaces), `pods/log` (with `follow`), Status objects for every
 * error, validation against the Kubernetes 1.33 schemas, RBAC from deploy/kubernetes, the
 * garbage collector and Job controller (cluster.ts), and a kubelet that runs pods in Docker
 * (kubelet.ts). Faults a cluster gives are switched on through `faults`.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Duplex, Readable } from "node:stream";
import { stringify } from "yaml";
import { frames } from "../../src/exec/docker/docker-log-frames.js";
import { recordStart } from "../cost/record.js";
import { Cluster, info, type PropagationPolicy } from "./cluster.js";
import { Kubelet } from "./kubelet.js";
import { type KubeObject, parseFieldSelector, parseLabelSelector, type WatchType } from "./objects.js";
import { adminIdentity, allowed, type Identity, type PolicyRule, runnerRoleRules } from "./rbac.js";
import { apiVersionOf, discovery, findResource, type ResourceInfo } from "./resources.js";
import {
  badRequest,
  forbidden,
  internal,
  methodNotAllowed,
  notFound,
  pathNotFound,
  StatusError,
  unauthorized,
} from "./status.js";
import { makeServingCertificate } from "./tls.js";

export interface ScriptedKubernetesOptions {
  /** A folder of the test's own: pod volumes and kubeconfig files go under it. */
  root: string;
  /** Namespaces that exist from the start. */
  namespaces?: string[];
  /** Pods' network: `host` by default (pods reach the test's servers on 127.0.0.1), or `none`. */
  network?: "host" | "none";
  /** Labels every pod container gets (a test file's cleanup label). */
  containerLabels?: Record<string, string>;
}

/** Which requests a `failRequests` fault answers. */
export interface RequestMatch {
  verb?: string;
  resource?: string;
  namespace?: string;
}

export interface ScriptedKubernetes {
  /** `https://127.0.0.1:PORT`, the cluster's `server:`. */
  url: string;
  /** PEM of the CA that signed the server's certificate (in every kubeconfig it writes). */
  caPem: string;
  /** A token with every right everywhere (what a test uses to look and to set up). */
  adminToken: string;
  cluster: Cluster;
  kubelet: Kubelet;
  /** `METHOD path?query` of every request, in order. */
  requests: string[];
  /**
   * A ServiceAccount's token (`system:serviceaccount:NAMESPACE:NAME`) bound in its namespace to
   * `rules`: by default the Role `runyard-runner` of deploy/kubernetes/runner-role.yaml.
   */
  addServiceAccount(options: {
    namespace: string;
    name?: string;
    rules?: PolicyRule[];
    token?: string;
  }): string;
  /** The token answers 401 from now on. */
  revokeToken(token: string): void;
  /** Writes a kubeconfig for `token` (current context, default namespace) and answers its path. */
  writeKubeconfig(token: string, namespace?: string, file?: string): string;
  createNamespace(name: string): void;
  deleteNamespace(name: string): void;
  /** A PersistentVolumeClaim (`claim`, in `namespace` or, with "*", any) backed by a host folder. */
  addClaim(namespace: string, claim: string, hostPath: string): void;
  /** One object as stored, or undefined. */
  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined;
  list(resource: string, namespace?: string): KubeObject[];
  /**
   * Resolves with the object once `test` holds for it (undefined when it is gone and `test`
   * accepts that); rejects after `timeoutMs` with the object's last state.
   */
  waitFor(
    resource: string,
    namespace: string,
    name: string,
    test: (object: KubeObject | undefined) => boolean,
    timeoutMs?: number,
  ): Promise<KubeObject | undefined>;
  faults: {
    /** Stops listening and cuts every open connection (watches and log streams end mid-stream). */
    unreachable(): Promise<void>;
    /** Listens again on the same port. */
    reachable(): Promise<void>;
    /** The next `count` matching requests get `status` (401 Unauthorized, 403 Forbidden, 500, 503) before auth. */
    failRequests(status: 401 | 403 | 429 | 500 | 503, count?: number, match?: RequestMatch): void;
    /** New pods stay Pending (PodScheduled False, Unschedulable) while on. */
    unschedulable(on: boolean): void;
    /** Pulls of `image` fail (ErrImagePull, then ImagePullBackOff) while on. */
    failImagePull(image: string, on?: boolean): void;
    /** Between ErrImagePull and ImagePullBackOff (default 1000 ms). */
    pullBackoffMs(ms: number): void;
    /** Kills the pod's container as the OOM killer does (terminated, OOMKilled, 137). */
    oomKill(namespace: string, pod: string, container?: string): Promise<void>;
    /** The kubelet evicts the pod: Failed, reason Evicted, a DisruptionTarget condition. */
    evict(namespace: string, pod: string): Promise<void>;
    /** Someone else deletes the Job (as `kubectl delete job` does: Background). */
    deleteJob(namespace: string, name: string, policy?: PropagationPolicy): void;
    /**
     * The next `count` followed logs (`pods/log?follow=true`) end at once, empty, as an API
     * server or kubelet that closes a log stream early ends it; the pod keeps its whole log.
     */
    endFollowedLogs(count?: number): void;
  };
  close(): Promise<void>;
}

const readBody = async (req: IncomingMessage): Promise<unknown> => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString();
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw badRequest(
      `the body of the request was in an unknown format - accepted media types include: application/json: ${(error as Error).message}`,
    );
  }
};

interface Route {
  info: ResourceInfo;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/** `/api/v1/namespaces/NS/pods/NAME/log` and the like; undefined for any other path. */
function route(path: string): Route | undefined {
  const m = /^\/api\/v1\/(.+)$/.exec(path) ?? /^\/apis\/([^/]+)\/([^/]+)\/(.+)$/.exec(path);
  if (!m) return undefined;
  const core = path.startsWith("/api/");
  const group = core ? "" : m[1]!;
  const version = core ? "v1" : m[2]!;
  const segments = (core ? m[1]! : m[3]!).split("/").map(decodeURIComponent);
  let namespace: string | undefined;
  if (segments[0] === "namespaces" && segments.length >= 3) {
    namespace = segments[1];
    segments.splice(0, 2);
  }
  const [resource, name, subresource, ...rest] = segments;
  if (rest.length > 0 || !resource) return undefined;
  const found = findResource(group, version, resource);
  if (!found) return undefined;
  if (namespace !== undefined && !found.namespaced) return undefined;
  if (subresource !== undefined && !found.subresources.includes(subresource)) return undefined;
  return { info: found, namespace, name, subresource };
}

const withoutType = (object: KubeObject): Record<string, unknown> => {
  const { apiVersion: _a, kind: _k, ...rest } = object;
  return rest;
};

export async function startScriptedKubernetes(
  options: ScriptedKubernetesOptions,
): Promise<ScriptedKubernetes> {
  recordStart("kubernetes server");
  const cluster = new Cluster();
  mkdirSync(options.root, { recursive: true });
  const kubelet = new Kubelet(cluster, {
    root: join(options.root, "kubelet"),
    network: options.network ?? "host",
    containerLabels: { "runyard.test": "1", ...options.containerLabels },
    nodeName: "scripted-node",
  });
  for (const namespace of ["default", "kube-system", ...(options.namespaces ?? [])]) {
    if (!cluster.namespaceExists(namespace)) cluster.createNamespace(namespace);
  }
  const adminToken = `admin-${randomBytes(16).toString("hex")}`;
  const tokens = new Map<string, Identity>([[adminToken, adminIdentity()]]);
  const requests: string[] = [];
  const sockets = new Set<Duplex>();
  const streams = new Set<() => void>();
  let failures: { status: number; left: number; match: RequestMatch }[] = [];
  let followedLogsToEnd = 0;
  let port = 0;
  let url = "";

  const send = (res: ServerResponse, code: number, body: unknown) => {
    if (res.headersSent) return res.destroy();
    res.writeHead(code, { "content-type": "application/json", "cache-control": "no-cache, private" });
    res.end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, error: unknown) => {
    const status = error instanceof StatusError ? error : internal((error as Error).message ?? String(error));
    send(res, status.code, status.body);
  };

  const identityOf = (req: IncomingMessage): Identity | undefined => {
    const bearer = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
    return bearer === undefined ? undefined : tokens.get(bearer);
  };

  const verbOf = (method: string, r: Route, query: URLSearchParams): string | undefined => {
    const watching = ["true", "1"].includes(query.get("watch") ?? "");
    if (method === "GET") return r.name ? "get" : watching ? "watch" : "list";
    if (method === "POST" && !r.name) return "create";
    if (method === "DELETE") return r.name ? "delete" : "deletecollection";
    if (method === "PUT") return "update";
    if (method === "PATCH") return "patch";
    return undefined;
  };

  const selectorsOf = (query: URLSearchParams) => {
    const labels = parseLabelSelector(query.get("labelSelector") ?? "");
    if (!labels)
      throw badRequest(
        `unable to parse requirement: invalid label selector: "${query.get("labelSelector")}"`,
      );
    const fields = parseFieldSelector(query.get("fieldSelector") ?? "");
    if (!fields) throw badRequest(`invalid field selector: "${query.get("fieldSelector")}"`);
    return (object: KubeObject) => labels(object.metadata.labels ?? {}) && fields(object);
  };

  const serveWatch = (req: IncomingMessage, res: ServerResponse, r: Route, query: URLSearchParams) => {
    const matches = selectorsOf(query);
    const rv = query.get("resourceVersion");
    const from = rv && rv !== "0" ? Number(rv) : undefined;
    if (from !== undefined && Number.isNaN(from)) throw badRequest(`invalid resource version: ${rv}`);
    res.writeHead(200, {
      "content-type": "application/json",
      "transfer-encoding": "chunked",
      "cache-control": "no-cache, private",
    });
    const write = (type: WatchType | "BOOKMARK", object: unknown) =>
      res.write(`${JSON.stringify({ type, object })}\n`);
    const stop = cluster.store.watch(
      {
        resource: r.info.resource,
        namespace: r.info.namespaced ? r.namespace : undefined,
        matches,
        send: (change) => write(change.type, change.object),
      },
      r.info,
      from,
    );
    const timeout = Number(query.get("timeoutSeconds") ?? 1800);
    const end = () => {
      stop();
      clearTimeout(timer);
      streams.delete(end);
      if (!res.writableEnded) res.end();
    };
    const timer = setTimeout(end, timeout * 1000);
    streams.add(end);
    req.on("close", end);
    res.on("close", end);
  };

  const serveLog = async (req: IncomingMessage, res: ServerResponse, r: Route, query: URLSearchParams) => {
    const pod = cluster.store.get(r.info, r.namespace, r.name!);
    if (!pod) throw notFound(r.info, r.name!);
    const container = query.get("container") ?? undefined;
    if (["true", "1"].includes(query.get("previous") ?? "")) {
      throw badRequest(
        `previous terminated container "${container ?? ""}" in pod "${pod.metadata.name}" not found`,
      );
    }
    const tail = query.get("tailLines");
    const output = await kubelet.logs(pod, container, {
      follow: ["true", "1"].includes(query.get("follow") ?? ""),
      timestamps: ["true", "1"].includes(query.get("timestamps") ?? ""),
      ...(tail !== null ? { tailLines: Number(tail) } : {}),
    });
    if (Buffer.isBuffer(output)) {
      const limit = Number(query.get("limitBytes") ?? Number.NaN);
      res.writeHead(200, { "content-type": "text/plain", "cache-control": "no-cache, private" });
      res.end(Number.isInteger(limit) && limit > 0 ? output.subarray(0, limit) : output);
      return;
    }
    res.writeHead(200, {
      "content-type": "text/plain",
      "transfer-encoding": "chunked",
      "cache-control": "no-cache, private",
    });
    const stream = output as Readable;
    if (followedLogsToEnd > 0) {
      followedLogsToEnd--;
      stream.destroy();
      res.end();
      return;
    }
    const end = () => {
      streams.delete(end);
      stream.destroy();
      if (!res.writableEnded) res.end();
    };
    streams.add(end);
    req.on("close", end);
    try {
      for await (const frame of frames(stream as AsyncIterable<Buffer>)) res.write(frame.data);
    } catch {
      // The stream was cut (the client left, the server was made unreachable).
    }
    end();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const parsed = new URL(req.url ?? "/", url);
    const path = parsed.pathname.replace(/\/$/, "") || "/";
    const query = parsed.searchParams;
    const method = req.method ?? "GET";
    requests.push(`${method} ${parsed.pathname}${parsed.search}`);
    if (["/healthz", "/livez", "/readyz"].includes(path)) {
      res.writeHead(200, { "content-type": "text/plain" });
      return res.end("ok");
    }
    const r = route(path);
    const verb = r ? verbOf(method, r, query) : undefined;
    const failure = failures.find(
      (f) =>
        f.left > 0 &&
        (!f.match.verb || f.match.verb === verb) &&
        (!f.match.resource || f.match.resource === r?.info.resource) &&
        (!f.match.namespace || f.match.namespace === r?.namespace),
    );
    if (failure) {
      failure.left--;
      failures = failures.filter((f) => f.left > 0);
      if (failure.status === 401) throw unauthorized();
      if (failure.status === 403 && r && verb) {
        throw forbidden("system:anonymous", verb, r.info, r.subresource, r.namespace, r.name);
      }
      const reasons: Record<number, string> = {
        403: "Forbidden",
        429: "TooManyRequests",
        500: "InternalError",
        503: "ServiceUnavailable",
      };
      const error = new StatusError({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message:
          failure.status === 429
            ? "Too many requests, please try again later."
            : "the server is currently unable to handle the request",
        reason: reasons[failure.status] ?? "InternalError",
        code: failure.status,
      });
      throw error;
    }
    const identity = identityOf(req);
    if (!identity) throw unauthorized();
    const doc = method === "GET" ? discovery(path, `127.0.0.1:${port}`) : undefined;
    if (doc) return send(res, 200, doc);
    if (!r) throw pathNotFound();
    if (!verb || verb === "update" || verb === "patch") throw methodNotAllowed();
    const resource = r.subresource ? `${r.info.resource}/${r.subresource}` : r.info.resource;
    const namespace = r.info.namespaced ? r.namespace : undefined;
    if (!allowed(identity, verb, r.info.group, resource, namespace, r.name)) {
      throw forbidden(identity.user, verb, r.info, r.subresource, namespace, r.name);
    }
    if (r.info.namespaced && r.namespace === undefined && verb !== "list" && verb !== "watch")
      throw pathNotFound();
    if (r.subresource === "log") return serveLog(req, res, r, query);
    switch (verb) {
      case "get": {
        const object = cluster.store.get(r.info, namespace, r.name!);
        if (!object) throw notFound(r.info, r.name!);
        return send(res, 200, object);
      }
      case "list": {
        const matches = selectorsOf(query);
        return send(res, 200, {
          kind: `${r.info.kind}List`,
          apiVersion: apiVersionOf(r.info),
          metadata: { resourceVersion: String(cluster.store.currentRevision) },
          items: cluster.store.list(r.info, namespace).filter(matches).map(withoutType),
        });
      }
      case "watch":
        return serveWatch(req, res, r, query);
      case "create": {
        const body = await readBody(req);
        if (r.info.kind === "Namespace") {
          return send(res, 201, cluster.create(r.info, undefined, body));
        }
        if (query.get("dryRun") === "All") {
          throw badRequest("dryRun is not supported by the scripted API server");
        }
        return send(res, 201, cluster.create(r.info, namespace, body));
      }
      case "delete": {
        const body = ((await readBody(req)) ?? {}) as {
          propagationPolicy?: string;
          gracePeriodSeconds?: number;
        };
        const policy = query.get("propagationPolicy") ?? body.propagationPolicy;
        if (policy !== undefined && !["Foreground", "Background", "Orphan"].includes(policy)) {
          throw badRequest(
            `propagationPolicy: Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan"`,
          );
        }
        const grace = query.get("gracePeriodSeconds") ?? body.gracePeriodSeconds;
        if (r.info.kind === "Namespace") {
          const object = cluster.store.get(r.info, undefined, r.name!);
          if (!object) throw notFound(r.info, r.name!);
          cluster.deleteNamespace(r.name!);
          return send(res, 200, object);
        }
        const deleted = cluster.delete(r.info, namespace, r.name!, {
          ...(policy ? { propagationPolicy: policy as PropagationPolicy } : {}),
          ...(grace !== undefined && grace !== null ? { gracePeriodSeconds: Number(grace) } : {}),
        });
        return send(res, 200, deleted);
      }
      case "deletecollection": {
        const matches = selectorsOf(query);
        const policy = query.get("propagationPolicy") ?? undefined;
        const items = cluster.store.list(r.info, namespace).filter(matches);
        for (const item of items) {
          cluster.delete(r.info, item.metadata.namespace, item.metadata.name, {
            ...(policy ? { propagationPolicy: policy as PropagationPolicy } : {}),
          });
        }
        return send(res, 200, {
          kind: `${r.info.kind}List`,
          apiVersion: apiVersionOf(r.info),
          metadata: { resourceVersion: String(cluster.store.currentRevision) },
          items: items.map(withoutType),
        });
      }
    }
    throw methodNotAllowed();
  };

  const tls = makeServingCertificate(join(options.root, "tls"));
  const server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    handle(req, res).catch((error) => fail(res, error));
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
  await listen();
  port = (server.address() as AddressInfo).port;
  url = `https://127.0.0.1:${port}`;

  const cut = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const end of [...streams]) end();
    for (const socket of sockets) socket.destroy();
    await closed;
  };

  return {
    url,
    caPem: tls.ca,
    adminToken,
    cluster,
    kubelet,
    requests,
    addServiceAccount({ namespace, name = "runyard-runner", rules, token }) {
      const value = token ?? `sa-${randomBytes(16).toString("hex")}`;
      tokens.set(value, {
        user: `system:serviceaccount:${namespace}:${name}`,
        namespace,
        rules: rules ?? runnerRoleRules(),
      });
      return value;
    },
    revokeToken: (token) => void tokens.delete(token),
    writeKubeconfig(token, namespace, file) {
      const path = file ?? join(options.root, `kubeconfig-${randomBytes(4).toString("hex")}`);
      const user = tokens.get(token)?.user ?? "user";
      writeFileSync(
        path,
        stringify({
          apiVersion: "v1",
          kind: "Config",
          clusters: [
            {
              name: "scripted",
              cluster: { server: url, "certificate-authority-data": Buffer.from(tls.ca).toString("base64") },
            },
          ],
          users: [{ name: user, user: { token } }],
          contexts: [
            { name: "scripted", context: { cluster: "scripted", user, ...(namespace ? { namespace } : {}) } },
          ],
          "current-context": "scripted",
          preferences: {},
        }),
        { mode: 0o600 },
      );
      return path;
    },
    createNamespace: (name) => void cluster.createNamespace(name),
    deleteNamespace: (name) => cluster.deleteNamespace(name),
    addClaim: (namespace, claim, hostPath) => {
      kubelet.claims.set(namespace === "*" ? claim : `${namespace}/${claim}`, hostPath);
      cluster.events.emit("faults");
    },
    get: (resource, namespace, name) => cluster.store.get(info(resource), namespace, name),
    list: (resource, namespace) => cluster.store.list(info(resource), namespace),
    waitFor(resource, namespace, name, test, timeoutMs = 60_000) {
      const r = info(resource);
      return new Promise((resolve, reject) => {
        const current = () => cluster.store.get(r, namespace, name);
        if (test(current())) return resolve(current());
        const listener = () => {
          const now = current();
          if (test(now)) {
            done();
            resolve(now);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `${resource} ${namespace}/${name} not as expected after ${timeoutMs} ms: ${JSON.stringify(current())}`,
            ),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          const at = cluster.store.listeners.indexOf(listener);
          if (at >= 0) cluster.store.listeners.splice(at, 1);
        };
        cluster.store.listeners.push(listener);
      });
    },
    faults: {
      unreachable: cut,
      reachable: listen,
      failRequests(status, count = 1, match = {}) {
        failures.push({ status, left: count, match });
      },
      unschedulable(on) {
        kubelet.faults.unschedulable = on;
        cluster.events.emit("faults");
      },
      failImagePull(image, on = true) {
        if (on) kubelet.faults.failingPulls.add(image);
        else kubelet.faults.failingPulls.delete(image);
        cluster.events.emit("faults");
      },
      pullBackoffMs(ms) {
        kubelet.faults.pullBackoffMs = ms;
      },
      oomKill: (namespace, pod, container) => kubelet.oomKill(namespace, pod, container),
      evict: (namespace, pod) =>
        kubelet.fail(
          namespace,
          pod,
          "Evicted",
          "The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki. ",
        ),
      deleteJob(namespace, name, policy = "Background") {
        cluster.delete(info("jobs"), namespace, name, { propagationPolicy: policy });
      },
      endFollowedLogs(count = 1) {
        followedLogsToEnd += count;
      },
    },
    async close() {
      cluster.close();
      if (server.listening) await cut();
      await kubelet.close();
    },
  };
}
