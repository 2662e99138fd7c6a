import { createHash } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stepConfinement } from "../../core/confinement.js";
import { DestinationList } from "../../core/outbound/destination-list.js";
import {
  createEgressProxy,
  type EgressDestination,
  machineAddresses,
  publicPolicy,
} from "../egress-proxy.js";
import type { SandboxNetwork } from "../types.js";

import { hostResolvers, plainTcpRules } from "./sandbox-tcp-rules.js";

/** Where, inside a sandbox, the forwarder listens: its own loopback, so any fixed port serves. */
export const proxyPort = 3128;
/** Where the forwarder and the proxy's socket are bound, inside the sandbox's own /run. */
const insideFolder = "/run/runyard-net";
const insideForwarder = `${insideFolder}/egress-forward`;
const insideSocket = `${insideFolder}/egress.sock`;

/** The variables HTTP clients read for a proxy, each spelling they read, and what stays local. */
export function proxyEnv(port: number): Record<string, string> {
  const proxy = `http://127.0.0.1:${port}`;
  const local = "localhost,127.0.0.1,::1";
  return {
    HTTP_PROXY: proxy,
    HTTPS_PROXY: proxy,
    http_proxy: proxy,
    https_proxy: proxy,
    NO_PROXY: local,
    no_proxy: local,
  };
}

/** The network of a sandbox whose proxy listens at `socketPath` on the host. */
export function sandboxNetwork(
  forwarder: string,
  socketPath: string,
  plainTcp?: () => string,
): SandboxNetwork {
  const env = proxyEnv(proxyPort);
  return {
    id: socketPath,
    ...(plainTcp === undefined ? {} : { plainTcp }),
    bwrapArgs: [
      "--unshare-net",
      "--ro-bind",
      forwarder,
      insideForwarder,
      "--bind",
      socketPath,
      insideSocket,
      ...Object.entries(env).flatMap(([name, value]) => ["--setenv", name, value]),
    ],
    wrap: (argv) => [insideForwarder, String(proxyPort), insideSocket, "--", ...argv],
    env,
  };
}

/** Who a step job is run for, as the server marks it (core/step-attempt.ts). */
export interface NetworkOwner {
  /** An unconfined run's (`stepConfinement`, core/confinement.ts). */
  unrestricted?: true | undefined;
  /** The run's tenant; null: a run outside any tenant; absent: a server that does not say. */
  tenant_id?: string | null | undefined;
}

/**
 * Whether a job's commands get a network of their own on a runner: a tenant's run on a shared
 * runner does, and so does a run of a server that does not say whose it is. A platform admin's
 * and a run outside any tenant (the operator's own) keep the host's network, as every run does on
 * a runner that serves one principal.
 */
export function needsOwnNetwork(owner: NetworkOwner, runnerShared: boolean): boolean {
  if (!runnerShared || stepConfinement.read(owner) === "unconfined") return false;
  return owner.tenant_id !== null;
}

export interface RunnerEgressOptions {
  /** The static forwarder (native/build/egress-forward). */
  forwarder: string;
  /**
   * The internal destinations each tenant's steps may reach through the proxy (`step_network_allow`
   * in the runner's config file: tenant id to destination entries, core/outbound/destination-list.ts).
   */
  allow: Readonly<Record<string, readonly string[]>>;
  /** Told of each refused destination, with the tenant whose step asked. */
  refused: (tenant: string | undefined, destination: EgressDestination) => void;
  /** Whether a run's sandbox gets plain TCP and UDP out through pasta (sandbox-tcp.ts). */
  plainTcp?: boolean;
}

/**
 * The runner's egress for sandboxed steps: one proxy for the runner's life, listening on one
 * socket per tenant, each held to that tenant's policy (public addresses, and the internal ones
 * the operator allows it). A sandbox binds only its own tenant's socket.
 */
export class RunnerEgress {
  private readonly proxy = createEgressProxy();
  private readonly sockets = new Map<string, Promise<string>>();

  private constructor(
    private readonly folder: string,
    private readonly options: RunnerEgressOptions,
  ) {}

  /** Starts the runner's proxy; its sockets live in a private folder of their own, short enough for a socket path. */
  static async start(options: RunnerEgressOptions): Promise<RunnerEgress> {
    const folder = await mkdtemp(join(tmpdir(), "runyard-egress-"));
    await chmod(folder, 0o700);
    return new RunnerEgress(folder, options);
  }

  /** The network of a sandbox of `tenant` (undefined: a tenant unknown, allowed nothing internal). */
  async networkFor(tenant: string | undefined): Promise<SandboxNetwork> {
    const key = tenant ?? "";
    let socket = this.sockets.get(key);
    if (!socket) {
      const path = join(this.folder, `${createHash("sha256").update(key).digest("hex").slice(0, 16)}.sock`);
      const internal = new DestinationList(tenant === undefined ? [] : (this.options.allow[tenant] ?? []));
      socket = this.proxy
        .listen(
          { socketPath: path },
          publicPolicy(internal, (d) => this.options.refused(tenant, d)),
        )
        .then(async (where) => {
          await chmod(where, 0o600);
          return where;
        });
      this.sockets.set(key, socket);
      socket.catch(() => this.sockets.delete(key));
    }
    const allowed = tenant === undefined ? [] : (this.options.allow[tenant] ?? []);
    // Read once a sandbox is made, not for each command that asks for the network.
    const rules = this.options.plainTcp
      ? () => plainTcpRules(allowed, machineAddresses(), hostResolvers())
      : undefined;
    return sandboxNetwork(this.options.forwarder, await socket, rules);
  }

  async close(): Promise<void> {
    await this.proxy.close();
    await rm(this.folder, { recursive: true, force: true });
  }
}
