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

/** How long a start's question to the engine may take before the engine counts as not answering. */
const answerTimeoutMs = 10_000;

/**
 * One GET of the engine's HTTP API, answered as status and body. The runner asks the engine twice
 * at every start (is it there, which of its containers did an earlier life leave), and a plain
 * request does that without loading dockerode and its gRPC and SSH stacks, a fifth of a second of
 * CPU that a runner with no Docker work never needed.
 */
function get(address: DockerAddress, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...("socketPath" in address ? { socketPath: address.socketPath } : address),
        path,
        method: "GET",
        timeout: answerTimeoutMs,
      },
      (response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          body += chunk;
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
        response.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`the Docker engine did not answer ${path} in time`)));
    req.on("error", reject);
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
