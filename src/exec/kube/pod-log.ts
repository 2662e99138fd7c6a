import { Writable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { Log } from "@kubernetes/client-node";
import type { OutputStream } from "../types.js";
import type { KubeCluster } from "./cluster.js";
import { kubeContainerName } from "./job-objects.js";
import { podLineMarks } from "./pod-init.js";

/**
 * Follows the log of a Job's pod (`pods/log?follow=true`) through the client's `Log`, and hands
 * each line the pod's init wrote back to its stream: `O ` lines to stdout, `E ` to stderr (a
 * line without a mark, which only the kubelet writes, to stderr). Resolves when the log ends
 * (the container ended, or the API closed the stream) or `signal` is aborted; rejects with a
 * typed error when the API refuses the log.
 */
export async function followPodLog(
  cluster: KubeCluster,
  podName: string,
  onOutput: (stream: OutputStream, data: string) => void,
  signal: AbortSignal,
): Promise<void> {
  const decoder = new StringDecoder("utf8");
  let pending = "";
  const hand = (line: string) => {
    if (line.startsWith(podLineMarks.stdout))
      onOutput("stdout", `${line.slice(podLineMarks.stdout.length)}\n`);
    else if (line.startsWith(podLineMarks.stderr))
      onOutput("stderr", `${line.slice(podLineMarks.stderr.length)}\n`);
    else if (line !== "") onOutput("stderr", `${line}\n`);
  };
  const take = (text: string) => {
    pending += text;
    let newline = pending.indexOf("\n");
    while (newline !== -1) {
      hand(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
      newline = pending.indexOf("\n");
    }
  };
  await followPodBytes(
    cluster,
    podName,
    kubeContainerName,
    {
      chunk: (chunk) => take(decoder.write(chunk)),
      end: () => {
        take(decoder.end());
        if (pending) hand(pending);
        pending = "";
      },
    },
    signal,
  );
}

/**
 * Follows one container's log of a pod as it comes, in the bytes the kubelet wrote (stdout and
 * stderr merged): `chunk` per piece, `end` once when the log ends. Resolves when the log ends or
 * `signal` is aborted; rejects with a typed error when the API refuses the log.
 */
export async function followPodBytes(
  cluster: KubeCluster,
  podName: string,
  container: string,
  on: { chunk: (chunk: Buffer) => void; end?: () => void },
  signal: AbortSignal,
): Promise<void> {
  let ended!: () => void;
  const done = new Promise<void>((resolve) => {
    ended = resolve;
  });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      on.chunk(chunk);
      callback();
    },
    final(callback) {
      on.end?.();
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
