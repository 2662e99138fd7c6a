import { createServer, type Server } from "node:http";
import { connect, createServer as createTcpServer, type Server as TcpServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listContainers, pingEngine } from "../src/exec/docker/docker-api.js";
import { DockerEngine, dockerEndpoint } from "../src/exec/docker/docker-engine.js";
import { tempDir } from "./helpers/cli.js";
import { busyboxImage, requireDocker, testLabel, testRunLabel } from "./helpers/docker.js";

const haveDocker = await requireDocker();

/**
 * What a runner asks the engine at every start, in plain requests instead of through dockerode:
 * whether it answers, and which containers carry given labels. A wrong answer here makes a runner
 * take bots and Docker steps with no engine, or miss the containers an earlier life left.
 */
describe.skipIf(!haveDocker)("the engine questions of a runner's start", () => {
  const socket = { socketPath: "/var/run/docker.sock" };
  const run = `docker-api-${process.pid}-${Date.now().toString(36)}`;
  const engine = new DockerEngine();
  let notDocker: Server;
  let notDockerPort = 0;
  /** The real engine on a TCP port, as `DOCKER_HOST=tcp://...` names one: each connection piped to its socket. */
  let tcpEngine: TcpServer;
  let tcpEnginePort = 0;
  const made: string[] = [];

  beforeAll(async () => {
    notDocker = createServer((_, response) => response.writeHead(404).end("no such page"));
    await new Promise<void>((resolve) => notDocker.listen(0, "127.0.0.1", resolve));
    notDockerPort = (notDocker.address() as { port: number }).port;
    tcpEngine = createTcpServer((client) => {
      const engineSocket = connect(socket.socketPath);
      client.pipe(engineSocket).pipe(client);
      client.on("error", () => engineSocket.destroy());
      engineSocket.on("error", () => client.destroy());
    });
    await new Promise<void>((resolve) => tcpEngine.listen(0, "127.0.0.1", resolve));
    tcpEnginePort = (tcpEngine.address() as { port: number }).port;
  });

  afterAll(async () => {
    notDocker.close();
    tcpEngine.close();
    await Promise.all(made.map((id) => engine.remove(id)));
  });

  it("says the engine answers on its socket, and not where nothing or something else listens", async () => {
    expect(await pingEngine(socket)).toBe(true);
    expect(await pingEngine({ socketPath: join(tempDir(), "docker.sock") })).toBe(false);
    expect(await pingEngine({ host: "127.0.0.1", port: notDockerPort })).toBe(false);
  });

  it("asks an engine that DOCKER_HOST names on a TCP port, as the runner reads it", async () => {
    const endpoint = dockerEndpoint(`tcp://127.0.0.1:${tcpEnginePort}`);
    expect(await pingEngine(endpoint.options)).toBe(true);
    expect(Array.isArray(await listContainers(endpoint.options, [`${testRunLabel}=${run}`]))).toBe(true);
    expect(await new DockerEngine(endpoint.options).ping()).toBe(true);
  });

  it("lists the containers that carry every label asked for, running or not, and no other", async () => {
    const image = await busyboxImage();
    const create = async (labels: Record<string, string>) => {
      const id = await engine.create({
        Image: image,
        Cmd: ["true"],
        Labels: { [testLabel]: "1", [testRunLabel]: run, ...labels },
        HostConfig: { NetworkMode: "none" },
      });
      made.push(id);
      return id;
    };
    const both = await create({ "runyard.test.api": "a", "runyard.test.api-step": "" });
    await create({ "runyard.test.api": "b", "runyard.test.api-step": "" });
    await create({ "runyard.test.api": "a" });
    const listed = await listContainers(socket, [
      `${testRunLabel}=${run}`,
      "runyard.test.api=a",
      "runyard.test.api-step",
    ]);
    expect(listed.map((container) => container.Id)).toEqual([both]);
    expect(listed[0]?.Labels["runyard.test.api"]).toBe("a");
    expect(listed[0]?.State).toBe("created");
  });

  it("removes a container that others remove at the same moment, each call ending once it is gone", async () => {
    // A runner's sweep and a bot's stop (or a cluster's garbage collection) may remove one
    // container together: the engine answers all but one "removal ... already in progress".
    const id = await engine.create({
      Image: await busyboxImage(),
      Cmd: ["sleep", "600"],
      Labels: { [testLabel]: "1", [testRunLabel]: run },
      HostConfig: { NetworkMode: "none" },
    });
    made.push(id);
    await engine.docker.getContainer(id).start();
    const removals = await Promise.allSettled([1, 2, 3, 4].map(() => engine.remove(id)));
    expect(removals.map((removal) => removal.status)).toEqual([
      "fulfilled",
      "fulfilled",
      "fulfilled",
      "fulfilled",
    ]);
    await expect(engine.docker.getContainer(id).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it("says what the engine refused when it will not list", async () => {
    // A label filter must be a list of strings: the engine refuses it and says why.
    await expect(listContainers(socket, [{} as unknown as string])).rejects.toThrow(
      /refused to list containers \(HTTP [45]\d\d\): json: cannot unmarshal/,
    );
  });
});
