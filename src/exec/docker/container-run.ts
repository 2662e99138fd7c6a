import type { Readable } from "node:stream";
import type { ContainerCreateOptions } from "dockerode";
import { OutputDecoder } from "../output-decoder.js";
import { type ExecResult, notStarted, type OutputHandler, unmeasured } from "../types.js";
import type { DockerEngine } from "./docker-engine.js";
import { frames } from "./docker-log-frames.js";

/** How one container is run to its end, as a launcher runs one process group. */
export interface ContainerRun {
  onOutput: OutputHandler;
  /** Aborting stops the container; the result's status is "canceled". */
  signal?: AbortSignal | undefined;
  /** Stops the container after this long; the result's status is "timeout". */
  timeoutMs?: number | undefined;
  /** Time between SIGTERM and SIGKILL. */
  killGraceMs: number;
  /** Called with the container's id once it exists, so an owner can remove it should it be stopped itself. */
  onCreated?: (id: string) => void;
  /** What to tell the user when the container is killed for its memory ("raise the host's memory"). */
  oomHint?: string;
}

/**
 * Creates a container from `spec`, streams its output, and stops it (SIGTERM, SIGKILL after the
 * grace) on abort or timeout; the container is removed however it ended. Shared by the docker
 * executor's steps and sandboxed agent turns (container-launcher.ts).
 */
export async function runContainer(
  engine: DockerEngine,
  spec: ContainerCreateOptions,
  run: ContainerRun,
): Promise<ExecResult> {
  const startedAt = performance.now();
  const { signal } = run;
  if (signal?.aborted) return notStarted(startedAt, "canceled");
  // The argv is the whole command, as with a process: an image's ENTRYPOINT would otherwise be
  // put in front of it ([""] is how the Docker API clears it).
  const create = { ...spec, Entrypoint: [""], AttachStdout: true, AttachStderr: true };
  let id: string;
  try {
    id = await engine.create(create);
  } catch (error) {
    return notStarted(startedAt, "failed", `cannot create the container: ${(error as Error).message}`);
  }
  run.onCreated?.(id);
  try {
    const handle = engine.docker.getContainer(id);
    const stream = (await handle.attach({ stream: true, stdout: true, stderr: true })) as unknown as Readable;
    const output = pumpOutput(stream, run.onOutput);
    try {
      await handle.start();
    } catch (error) {
      stream.destroy();
      await output;
      return notStarted(startedAt, "failed", `cannot start the container: ${(error as Error).message}`);
    }
    const stopper = new ContainerStopper(engine, id, run.killGraceMs);
    const onAbort = () => stopper.stop("canceled");
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer =
      run.timeoutMs === undefined ? undefined : setTimeout(() => stopper.stop("timeout"), run.timeoutMs);
    // Aborted between the check above and the listener: stop it now.
    if (signal?.aborted) onAbort();
    let exitCode: number;
    try {
      const [waited] = await Promise.all([handle.wait() as Promise<{ StatusCode: number }>, output]);
      exitCode = waited.StatusCode;
    } finally {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      stopper.done();
    }
    // Docker's stats end with the container, and sampling them while it runs costs a request per
    // sample for a number the limits already bound; a container reports no memory peak or CPU.
    if (stopper.reason) return unmeasured(startedAt, { status: stopper.reason, signal: stopper.lastSignal });
    const result = unmeasured(startedAt, { status: exitCode === 0 ? "success" : "failed", exitCode });
    const memory = spec.HostConfig?.Memory;
    if (exitCode === 137 && memory && (await engine.inspect(id).catch(() => undefined))?.oomKilled) {
      run.onOutput(
        "stderr",
        `runyard: the container went over its memory limit of ${Math.round(memory / 1024 / 1024)}m and was killed; ${run.oomHint ?? "raise its memory limit"}\n`,
      );
    }
    return result;
  } finally {
    await engine.remove(id).catch(() => {});
  }
}

/**
 * The containers an owner (a step attempt, a sandboxed turn) has running, so that it can remove
 * them should it be stopped itself before they end.
 */
export class RunningContainers {
  private readonly ids = new Set<string>();

  constructor(private readonly engine: DockerEngine) {}

  async run(spec: ContainerCreateOptions, run: Omit<ContainerRun, "onCreated">): Promise<ExecResult> {
    let created: string | undefined;
    try {
      return await runContainer(this.engine, spec, {
        ...run,
        onCreated: (id) => {
          created = id;
          this.ids.add(id);
        },
      });
    } finally {
      if (created) this.ids.delete(created);
    }
  }

  async removeAll(): Promise<void> {
    await Promise.all([...this.ids].map((id) => this.engine.remove(id).catch(() => {})));
  }
}

/**
 * Stops a container the way the process executor stops a process group: SIGTERM, then SIGKILL
 * after the grace. Docker's own `stop` takes whole seconds; steps are given milliseconds.
 */
class ContainerStopper {
  reason: "canceled" | "timeout" | undefined;
  lastSignal: string | null = null;
  private killTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly engine: DockerEngine,
    private readonly id: string,
    private readonly graceMs: number,
  ) {}

  stop(reason: "canceled" | "timeout"): void {
    if (this.reason) return;
    this.reason = reason;
    this.send("SIGTERM");
    this.killTimer = setTimeout(() => this.send("SIGKILL"), this.graceMs);
  }

  done(): void {
    if (this.killTimer) clearTimeout(this.killTimer);
  }

  private send(signal: "SIGTERM" | "SIGKILL"): void {
    this.lastSignal = signal;
    // A container that ended meanwhile answers 409; the wait sees its end either way.
    this.engine.docker
      .getContainer(this.id)
      .kill({ signal })
      .catch(() => {});
  }
}

/** Hands the container's output on as it comes, stdout and stderr apart, each decoded on its own. */
async function pumpOutput(stream: Readable, onOutput: OutputHandler): Promise<void> {
  const decoders = { stdout: new OutputDecoder(), stderr: new OutputDecoder() };
  try {
    for await (const { stream: name, data } of frames(stream)) {
      const text = decoders[name].write(data);
      if (text) onOutput(name, text);
    }
  } catch {
    // The connection closed under us (the container was removed): what came before is delivered.
  }
  for (const name of ["stdout", "stderr"] as const) {
    const rest = decoders[name].end();
    if (rest) onOutput(name, rest);
  }
}
