import { existsSync } from "node:fs";
import type { Config } from "../../core/config.js";
import type { Logger } from "../../core/logger.js";
import type { StepAttemptRequest } from "../../core/step-attempt.js";
import { nativeHelperPath } from "../../exec/native-helpers.js";
import { needsOwnNetwork, RunnerEgress } from "../../exec/sandbox/sandbox-network.js";
import { plainTcpProblem, sweepPlainTcp } from "../../exec/sandbox/sandbox-tcp.js";
import type { SandboxNetwork } from "../../exec/types.js";

/** A shared runner's networks for its tenants' steps, and the proxy behind them. */
export interface RunnerStepNetwork {
  /** The network of a step's sandbox: one of its own for a tenant's run, undefined for the host's. */
  networkFor(request: StepAttemptRequest): Promise<SandboxNetwork | undefined>;
  close(): Promise<void>;
}

/**
 * The networks of a sandboxing runner's steps. On a shared runner, a tenant's run (or one whose
 * server does not say whose it is) gets a network namespace of its own, its HTTP(S) going out
 * through the runner's egress proxy, held to public addresses and what `step_network_allow`
 * lets that tenant reach; without the forwarder such a step fails, never falling back to the
 * host's network. Other runs keep the host's network.
 */
export async function runnerStepNetwork(
  config: Config,
  shared: boolean,
  logger: Logger,
): Promise<RunnerStepNetwork | undefined> {
  if (!shared) return undefined;
  const forwarder = nativeHelperPath("egress-forward");
  if (!existsSync(forwarder)) {
    logger.warn(
      { forwarder },
      "tenants' steps cannot run on this shared runner: their network goes through native/build/egress-forward, which was not built (install a C compiler with static libc and run sh native/build.sh)",
    );
    return {
      networkFor: async (request) => {
        if (!needsOwnNetwork(request, true)) return undefined;
        throw new Error(`the runner's egress forwarder was not built (${forwarder})`);
      },
      close: async () => {},
    };
  }
  const tcpProblem = plainTcpProblem();
  // A runner killed with its sandboxes leaves their pastas: they serve nothing now.
  if (!tcpProblem) sweepPlainTcp();
  if (tcpProblem)
    logger.warn(
      { why: tcpProblem },
      "tenants' steps on this shared runner get HTTP(S) through its proxy only, no plain TCP (ssh, databases)",
    );
  const egress = await RunnerEgress.start({
    forwarder,
    allow: config.stepNetworkAllow,
    plainTcp: tcpProblem === undefined,
    refused: (tenant, destination) =>
      logger.info(
        { tenant: tenant ?? null, host: destination.host, port: destination.port },
        "a tenant's step was refused egress",
      ),
  });
  return {
    networkFor: async (request) =>
      needsOwnNetwork(request, true) ? egress.networkFor(request.tenant_id ?? undefined) : undefined,
    close: () => egress.close(),
  };
}
