import type Docker from "dockerode";

type Listed = Awaited<ReturnType<Docker["listContainers"]>>;

/**
 * Waits on Docker's events for the containers carrying `label` (`key=value`): lists them (running
 * or not) once the events are heard, then again after each of `events` (`start`, `destroy`...),
 * until `done` answers something. Rejects after `timeoutMs` with `what`.
 */
export async function untilContainers<T>(
  docker: Docker,
  label: string,
  events: string[],
  done: (containers: Listed) => T | undefined,
  what: string | (() => string),
  timeoutMs = 20_000,
): Promise<T> {
  const stream = (await docker.getEvents({
    filters: { type: ["container"], event: events, label: [label] },
  })) as NodeJS.ReadableStream & { destroy(): void };
  try {
    return await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${typeof what === "string" ? what : what()} (waited ${timeoutMs} ms)`)),
        timeoutMs,
      );
      let checking = Promise.resolve();
      const check = () => {
        checking = checking.then(async () => {
          const answer = done(await docker.listContainers({ all: true, filters: { label: [label] } }));
          if (answer !== undefined) {
            clearTimeout(timer);
            resolve(answer);
          }
        }, reject);
      };
      stream.on("data", check);
      stream.on("error", (error: Error) => {
        clearTimeout(timer);
        reject(error);
      });
      // Listening first, then the first look: what happened before is not waited for.
      check();
    });
  } finally {
    stream.destroy();
  }
}

/** Resolves once no container (running or not) carries `label`: on Docker's `destroy` events. */
export function containersGone(
  docker: Docker,
  label: string,
  what: string | (() => string),
  timeoutMs = 20_000,
): Promise<void> {
  return untilContainers(
    docker,
    label,
    ["destroy"],
    (containers) => (containers.length === 0 ? null : undefined),
    what,
    timeoutMs,
  ).then(() => undefined);
}
