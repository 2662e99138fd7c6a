import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { tempDir } from "./cli.js";
import { until } from "./processes.js";

/** A host of the test's own on a network it made: what a sandbox may or may not reach. */
export interface NetnsHost {
  /** Its address inside its namespace. */
  readonly address: string;
  /** Ends its service and removes its namespace and veth pair. */
  remove(): void;
}

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: "pipe" });
}

function answers(url: string): boolean {
  try {
    execFileSync("curl", ["-sf", "-m", "1", "-o", "/dev/null", url], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * A network namespace `name` behind a veth pair (`hostSide` on the host with `hostAddress`/30,
 * `nsSide` inside with `address`/30) serving HTTP on `port` (python's http.server); resolves
 * once the host reaches it. Needs root (`ip netns`). Its addresses never leave this machine.
 */
export async function startNetnsHost(options: {
  name: string;
  hostSide: string;
  nsSide: string;
  hostAddress: string;
  address: string;
  port: number;
}): Promise<NetnsHost> {
  const { name, hostSide, nsSide, hostAddress, address, port } = options;
  ip("netns", "add", name);
  ip("link", "add", hostSide, "type", "veth", "peer", "name", nsSide);
  ip("link", "set", nsSide, "netns", name);
  ip("addr", "add", `${hostAddress}/30`, "dev", hostSide);
  ip("link", "set", hostSide, "up");
  ip("netns", "exec", name, "ip", "addr", "add", `${address}/30`, "dev", nsSide);
  ip("netns", "exec", name, "ip", "link", "set", nsSide, "up");
  ip("netns", "exec", name, "ip", "link", "set", "lo", "up");
  const service: ChildProcess = spawn(
    "ip",
    ["netns", "exec", name, "python3", "-m", "http.server", String(port), "--bind", address],
    { cwd: tempDir(), stdio: "ignore" },
  );
  const remove = () => {
    service.kill("SIGKILL");
    for (const args of [
      ["link", "del", hostSide],
      ["netns", "del", name],
    ]) {
      try {
        ip(...args);
      } catch {}
    }
  };
  try {
    await until(
      `the service at ${address}:${port} answers`,
      () => answers(`http://${address}:${port}/`),
      15_000,
    );
  } catch (error) {
    remove();
    throw error;
  }
  return { address, remove };
}
