import { createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import type { ForgeKind } from "../../forges/registry.js";
import { secretMatches, signatureHeader, signatureMatches } from "../hooks/hook-signature.js";

/** A webhook delivery as its forge sends it: whether its credential matches, and what it is. */
export interface ForgeDelivery {
  /** Whether the signature (GitHub, Gitea) or the token (GitLab) matches the forge's secret. */
  signed: boolean;
  /** The forge's event name (`issues`, `Note Hook`, ...). */
  event: string;
  /** The delivery's id, the same for a forge's redelivery of it; undefined when none was sent. */
  deliveryId: string | undefined;
  /** The header the forge names the delivery in, for errors. */
  deliveryHeader: string;
  /** The forge's check that the webhook reaches runyard (GitHub's `ping`): answered, nothing more. */
  ping: boolean;
}

const header = (headers: IncomingHttpHeaders, ...names: string[]): string | undefined => {
  for (const name of names) {
    const value = headers[name];
    if (typeof value === "string") return value;
  }
  return undefined;
};

/**
 * Reads a delivery of a forge of `kind` checked against `secret`, each forge as it signs:
 * GitHub's `X-Hub-Signature-256` (`sha256=` and the HMAC-SHA256 of the raw body), Gitea's and
 * Forgejo's `X-Gitea-Signature` (the HMAC-SHA256's hex alone), GitLab's `X-Gitlab-Token` (the
 * secret itself). Each is compared in constant time.
 */
export function readForgeDelivery(
  kind: ForgeKind,
  secret: string,
  raw: Buffer,
  headers: IncomingHttpHeaders,
): ForgeDelivery {
  if (kind === "gitlab") {
    // GitLab sends the secret itself as its token; no token is compared all the same.
    const token = header(headers, "x-gitlab-token");
    return {
      signed: secretMatches(token ?? "", secret) && token !== undefined,
      event: header(headers, "x-gitlab-event") ?? "",
      // Idempotency-Key stays the same when GitLab retries a delivery; older GitLabs send the
      // event's UUID and the request's UUID only.
      deliveryId: header(headers, "idempotency-key", "x-gitlab-event-uuid", "x-gitlab-webhook-uuid"),
      deliveryHeader: "X-Gitlab-Event-UUID",
      ping: false,
    };
  }
  if (kind === "gitea") {
    return {
      signed: hexSignatureMatches(secret, raw, header(headers, "x-gitea-signature", "x-forgejo-signature")),
      event: header(headers, "x-gitea-event", "x-forgejo-event") ?? "",
      deliveryId: header(headers, "x-gitea-delivery", "x-forgejo-delivery"),
      deliveryHeader: "X-Gitea-Delivery",
      ping: false,
    };
  }
  const event = header(headers, "x-github-event") ?? "";
  return {
    signed: signatureMatches(secret, raw, header(headers, signatureHeader)),
    event,
    deliveryId: header(headers, "x-github-delivery"),
    deliveryHeader: "X-GitHub-Delivery",
    ping: event === "ping",
  };
}

/** Whether `given` is the hex HMAC-SHA256 of `body` under `secret` (Gitea's signature). */
function hexSignatureMatches(secret: string, body: Buffer, given: string | undefined): boolean {
  const expected = createHmac("sha256", secret).update(body).digest();
  const hex = given?.trim();
  const valid = hex !== undefined && /^[0-9a-fA-F]{64}$/.test(hex);
  const candidate = valid ? Buffer.from(hex, "hex") : Buffer.alloc(expected.length);
  return timingSafeEqual(candidate, expected) && valid;
}
