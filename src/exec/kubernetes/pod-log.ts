import { Writable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { CoreV1Api, Log } from "@kubernetes/client-node";
import { RunyardError } from "../../core/errors.js";
import type { OutputStream } from "../types.js";
import type { KubeCluster } from "./cluster.js";
import { podLineMarks } from "./pod-init.js";

/**
 * Follows one container's log of a Job's pod into `push` as it comes (followPodBytes); a stream
 * that ends while the pod runs is followed again until `podEnded` is called. Once the pod has
 * ended, `catchUp` stops following and, unless `missed` says otherwise, hands on what the followed
 * stream missed, should the API have closed it early: the pod keeps its whole log until its Job
 * is deleted.
 */
export function followPodLog(
  cluster: KubeCluster,
  podName: string,
  container: string,
  push: (chunk: Buffer) => void,
  signal: AbortSignal,
): { followed: Promise<void>; podEnded: () => void; catchUp: (missed?: () => boolean) => Promise<void> } {
  let bytes = 0;
  let following = true;
  let running = true;
  const chunk = (data: Buffer) => {
    if (!following) return;
    bytes += data.length;
    push(data);
  };
  return {
    followed: followPodBytes(cluster, podName, container, { chunk, running: () => running }, signal),
    podEnded: () => {
      running = false;
    },
    catchUp: async (missed = () => true) => {
      running = false;
      following = false;
      if (missed()) push(await podLogAfter(cluster, podName, container, bytes));
    },
  };
}

/**
 * The longest line handed on: the init's own cap (pod-init.ts) and its mark. A longer one can only
 * have been written past the init (a command of the pod that writes to PID 1's stdout, the log
 * itself): it is dropped, never held, so a line that never ends cannot fill the runner's memory.
 */
export const maxPodLogLineChars = 16 * 1024 * 1024 + podLineMarks.stdout.length;

/** A pod's log bytes as the lines its init wrote, each handed to its stream. */
export class PodLogLines {
  private readonly decoder = new StringDecoder("utf8");
  private pending = "";
  /** The line being read is past `maxLineChars`: the rest of it is dropped too. */
  private overlong = false;

  constructor(
    private readonly onOutput: (stream: OutputStream, data: string) => void,
    private readonly maxLineChars = maxPodLogLineChars,
  ) {}

  push(chunk: Buffer): void {
    const data = this.decoder.write(chunk);
    let start = 0;
    // Only the new text is searched: a long line held so far is not scanned again per chunk.
    for (let newline = data.indexOf("\n"); newline !== -1; newline = data.indexOf("\n", start)) {
      const piece = data.slice(start, newline);
      if (!this.overlong && this.pending.length + piece.length <= this.maxLineChars)
        this.hand(this.pending + piece);
      this.pending = "";
      this.overlong = false;
      start = newline + 1;
    }
    this.hold(data.slice(start));
  }

  end(): void {
    this.hold(this.decoder.end());
    if (this.pending && !this.overlong) this.hand(this.pending);
    this.pending = "";
    this.overlong = false;
  }

  private hold(piece: string): void {
    if (this.overlong || piece === "") return;
    if (this.pending.length + piece.length > this.maxLineChars) {
      this.overlong = true;
      this.pending = "";
      return;
    }
    this.pending += piece;
  }

  private hand(line: string): void {
    if (line.startsWith(podLineMarks.stdout))
      this.onOutput("stdout", `${line.slice(podLineMarks.stdout.length)}\n`);
    else if (line.startsWith(podLineMarks.stderr))
      this.onOutput("stderr", `${line.slice(podLineMarks.stderr.length)}\n`);
    else if (line !== "") this.onOutput("stderr", `${line}\n`);
  }
}

/**
 * Follows one container's log of a pod as it comes, in the bytes the kubelet wrote (stdout and
 * stderr merged): `chunk` per piece. Resolves when the log ends or `signal` is aborted; rejects with a typed error when the API refuses the log. A stream that
 * ends or fails while `running()` still says the container runs (an API server or kubelet closes
 * long streams, a log asked for as the container starts) is followed again, its bytes already
 * handed on skipped, for up to `maxRefollows` tries a second apart.
 */
async function followPodBytes(
  cluster: KubeCluster,
  podName: string,
  container: string,
  on: { chunk: (chunk: Buffer) => void; running?: () => boolean },
  signal: AbortSignal,
): Promise<void> {
  let seen = 0;
  for (let tries = 0; ; tries++) {
    let skip = seen;
    const followed = followOnce(
      cluster,
      podName,
      container,
      (chunk) => {
        if (skip >= chunk.length) {
          skip -= chunk.length;
          return;
        }
        const fresh = skip > 0 ? chunk.subarray(skip) : chunk;
        skip = 0;
        seen += fresh.length;
        on.chunk(fresh);
      },
      signal,
    );
    const failure = await followed.then(
      () => undefined,
      (error: unknown) => error,
    );
    // A refusal the operator must act on (401, 403, a namespace gone) is said at once.
    const refused = failure instanceof RunyardError && refusals.has(failure.code);
    if (signal.aborted || refused || !on.running?.() || tries >= maxRefollows) {
      if (failure !== undefined) throw failure;
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000).unref());
    if (signal.aborted || !on.running?.()) return;
  }
}

const maxRefollows = 60;
const refusals = new Set(["KUBE_UNAUTHORIZED", "KUBE_FORBIDDEN", "KUBE_NAMESPACE_MISSING"]);

/** One `pods/log?follow=true` stream, to its end. */
async function followOnce(
  cluster: KubeCluster,
  podName: string,
  container: string,
  chunk: (chunk: Buffer) => void,
  signal: AbortSignal,
): Promise<void> {
  let ended!: () => void;
  const done = new Promise<void>((resolve) => {
    ended = resolve;
  });
  const sink = new Writable({
    write(data: Buffer, _encoding, callback) {
      chunk(data);
      callback();
    },
    final(callback) {
      callback();
      ended();
    },
  });
  sink.on("close", () => ended());
  if (signal.aborted) return;
  const controller = await cluster.call({ verb: "get", resource: "pods/log" }, () =>
    new Log(cluster.credentials.config).log(cluster.namespace, podName, container, sink, {
      follow: true,
    }),
  );
  const onAbort = () => {
    controller.abort();
    ended();
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  try {
    await done;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/**
 * A container's whole log as the API holds it now (`pods/log` without follow): for when a
 * followed log ended before the container's last line (the API server or kubelet closed the
 * stream early), which a Job's pod keeps until the Job is deleted.
 */
export async function readPodLog(
  cluster: KubeCluster,
  podName: string,
  container: string,
  limitBytes: number,
): Promise<Buffer> {
  const core = cluster.credentials.config.makeApiClient(CoreV1Api);
  const text = await cluster.call({ verb: "get", resource: "pods/log" }, () =>
    core.readNamespacedPodLog({ name: podName, namespace: cluster.namespace, container, limitBytes }),
  );
  return Buffer.from(text, "utf8");
}

/**
 * What a catch-up reads past the followed bytes, and the most it reads in all: the log is read
 * from its start, into memory, so a command that printed gigabytes before its stream was cut is
 * not read again (what it printed beyond the output cap is not kept anyway).
 */
export const catchUpLimits = { beyondBytes: 8 * 1024 * 1024, totalBytes: 64 * 1024 * 1024 };

/** The rest of a container's log past its first `followed` bytes, within catchUpLimits; empty past them. */
export async function podLogAfter(
  cluster: KubeCluster,
  podName: string,
  container: string,
  followed: number,
): Promise<Buffer> {
  const limit = followed + catchUpLimits.beyondBytes;
  if (limit > catchUpLimits.totalBytes) return Buffer.alloc(0);
  const whole = await readPodLog(cluster, podName, container, limit).catch(() => undefined);
  return whole && whole.length > followed ? whole.subarray(followed) : Buffer.alloc(0);
}
