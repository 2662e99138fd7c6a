import type Docker from "dockerode";

/**
 * Resolves once no container (running or not) carries `label` (`key=value`): it listens to
 * Docker's `destroy` events for that label and lists the containers again after each, instead of
 * polling. Rejects after `timeoutMs` with `what`.
 */
export async function containersGone(
  docker: Docker,
  label: string,
  what: string | (() => string),
  timeoutMs = 20_000,
): Promise<void> {
  const events = (await docker.getEvents({
    filters: { type: ["container"], event: ["destroy"], label: [label] },
  })) as NodeJS.ReadableStream & { destroy(): void };
  const left = async () => (await docker.listContainers({ all: true, filters: { label: [label] } })).length;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`${typeof what === "string" ? what : what()}: still there after ${timeoutMs} ms`)),
        timeoutMs,
      );
      let checking = Promise.resolve();
      const check = () => {
        checking = checking.then(async () => {
          if ((await left()) === 0) {
            clearTimeout(timer);
            resolve();
          }
        }, reject);
      };
      events.on("data", check);
      events.on("error", (error: Error) => {
        clearTimeout(timer);
        reject(error);
      });
      // Listening first, then the first look: a container gone before it is not waited for.
      check();
    });
  } finally {
    events.destroy();
  }
}
