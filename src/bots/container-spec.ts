import type { ContainerCreateOptions } from "dockerode";
import { type HardenedContainerInput, hardenedContainer } from "../exec/docker/container-spec.js";
import type { BotOwnership } from "./types.js";

export interface BotContainerInput extends Omit<HardenedContainerInput, "ownerLabels" | "mounts"> {
  ownership: BotOwnership;
}

/** The labels that record whose a bot's container is, read back by reconciliation. */
export function botLabels(ownership: BotOwnership): Record<string, string> {
  return {
    "runyard.bot": ownership.botId,
    "runyard.tenant": ownership.tenantId ?? "",
    "runyard.owner": ownership.owner,
    "runyard.expires_at": ownership.expiresAt,
  };
}

/** A bot's container: hardened (exec/docker/container-spec.ts), no mounts at all, labelled with its owner. */
export function botContainer(input: BotContainerInput): ContainerCreateOptions {
  const { ownership, ...rest } = input;
  return hardenedContainer({ ...rest, ownerLabels: botLabels(ownership) });
}
