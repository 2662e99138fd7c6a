import { request } from "node:http";

/** Where the engine listens: a unix socket, or a host and port spoken to in plain HTTP. */
export type DockerAddress = { socketPath: string } | { host: string; port: string | number };

/** A container as the engine's list (`GET /containers/json`) gives it, in the fields runyard reads. */
export interface ListedContainer {
  Id: string;
  Names: string[];
  Image: string;
  State: string;
  Labels: Record<string, string>;
}

/** How long a start's question to the engine may take, in all, before the engine counts as not answering. */
const answerTimeoutMs = 10_000;

/** The most of an answer read: a container list of thousands is a few MiB. */
const answerCapBytes = 32 * 1024 * 1024;

/**
 * One GET of the engine's HTTP API, answered as status and body. The runner asks the engine twice
 * at every start (is it there, which of its containers did an earlier life leave), and a plain
 * request does that without loading dockerode and its gRPC and SSH stacks, a fifth of a second of
 * CPU that a runner with no Docker work never needed.
 */
function get(address: DockerAddress, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // Only where to connect: an endpoint's other options (dockerode's `protocol: "http"`) are not
    // node:http's, which wants "http:" and refuses the request otherwise.
    const where =
      "socketPath" in address
        ? { socketPath: address.socketPath }
        : { host: address.host, port: address.port };
    const req = request({ ...where, path, method: "GET" }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        body += chunk;
        if (body.length > answerCapBytes)
          req.destroy(new Error(`the Docker engine's answer to ${path} passed ${answerCapBytes} bytes`));
      });
      response.on("end", () => {
        clearTimeout(deadline);
        resolve({ status: response.statusCode ?? 0, body });
      });
      response.on("error", (error) => {
        clearTimeout(deadline);
        reject(error);
      });
    });
    // A deadline for the whole answer, not only for silence: an engine that trickles a byte now
    // and then must not hold a runner's start.
    const deadline = setTimeout(
      () =>
        req.destroy(new Error(`the Docker engine did not answer ${path} within ${answerTimeoutMs / 1000} s`)),
      answerTimeoutMs,
    );
    deadline.unref();
    req.on("error", (error) => {
      clearTimeout(deadline);
      reject(error);
    });
    req.end();
  });
}

/** Whether the engine answers its ping (`GET /_ping`) with OK. */
export async function pingEngine(address: DockerAddress): Promise<boolean> {
  try {
    return (await get(address, "/_ping")).status === 200;
  } catch {
    return false;
  }
}

/** Every container, running or not, that carries all of `labels` (`key=value` or `key`). */
export async function listContainers(address: DockerAddress, labels: string[]): Promise<ListedContainer[]> {
  const filters = encodeURIComponent(JSON.stringify({ label: labels }));
  const { status, body } = await get(address, `/containers/json?all=1&filters=${filters}`);
  if (status !== 200) {
    const message = (() => {
      try {
        return (JSON.parse(body) as { message?: string }).message ?? body;
      } catch {
        return body;
      }
    })();
    throw new Error(`the Docker engine refused to list containers (HTTP ${status}): ${message}`);
  }
  return JSON.parse(body) as ListedContainer[];
}
