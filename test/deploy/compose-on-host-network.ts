import { parse, stringify } from "yaml";
import { testLabel, testRunLabel } from "../helpers/docker.js";

interface ComposeService {
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  network_mode?: string;
  labels?: Record<string, string>;
  healthcheck?: { test: string[]; interval?: string };
}

interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes: Record<string, { labels?: Record<string, string> } | null>;
}

/**
 * The shipped docker-compose.yml as the compose test runs it. The engine there has no bridge
 * (dockerd --bridge=none), so compose's own network cannot be made: every service gets the host's
 * network, the server listens on `port` on loopback instead of publishing 8088, and the runners
 * dial it there. Everything it makes carries the test run's label, for the cleanup. Done on the
 * parsed file rather than with an override file, because compose merges `ports:` lists: an
 * override cannot take the shipped published port away, and the host's network refuses one.
 */
export function composeOnHostNetwork(shipped: string, port: number, run: string): string {
  const file = parse(shipped, { merge: true }) as ComposeFile;
  const labels = { [testLabel]: "1", [testRunLabel]: run };
  for (const service of Object.values(file.services)) {
    delete service.ports;
    service.network_mode = "host";
    service.labels = labels;
    if (service.environment?.ADOS_API_URL) service.environment.ADOS_API_URL = `http://127.0.0.1:${port}`;
  }
  const server = file.services.server;
  if (!server?.healthcheck || !server.command)
    throw new Error("docker-compose.yml has no server with a healthcheck");
  server.command = server.command.map((word) =>
    word === "0.0.0.0" ? "127.0.0.1" : word === "8088" ? String(port) : word,
  );
  server.healthcheck.test = server.healthcheck.test.map((word) => word.replace(":8088/", `:${port}/`));
  // The shipped interval suits a real deployment; the runners wait for the first healthy check.
  server.healthcheck.interval = "1s";
  for (const name of Object.keys(file.volumes)) file.volumes[name] = { labels };
  return stringify(file);
}
