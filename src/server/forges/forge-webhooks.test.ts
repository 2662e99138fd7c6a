import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { readForgeDelivery } from "./forge-webhooks.js";

const secret = "a".repeat(64);
const body = Buffer.from('{"object_kind":"issue"}');
const hmac = (key: string) => createHmac("sha256", key).update(body).digest("hex");

describe("each forge's webhook check", () => {
  it("GitLab: the secret token, exactly", () => {
    const read = (token?: string) =>
      readForgeDelivery("gitlab", secret, body, {
        "x-gitlab-event": "Issue Hook",
        "x-gitlab-event-uuid": "e-1",
        "x-gitlab-webhook-uuid": "w-1",
        ...(token === undefined ? {} : { "x-gitlab-token": token }),
      });
    expect(read(secret)).toMatchObject({ signed: true, event: "Issue Hook", deliveryId: "e-1" });
    for (const wrong of [undefined, "", secret.slice(1), `${secret}a`, secret.toUpperCase(), hmac(secret)])
      expect(read(wrong).signed, String(wrong)).toBe(false);
    // GitLab 17.4+: Idempotency-Key stays the same across retries.
    expect(
      readForgeDelivery("gitlab", secret, body, { "x-gitlab-token": secret, "idempotency-key": "k-1" })
        .deliveryId,
    ).toBe("k-1");
  });

  it("Gitea and Forgejo: the hex HMAC-SHA256 of the raw body", () => {
    const read = (headers: Record<string, string>) => readForgeDelivery("gitea", secret, body, headers);
    expect(
      read({ "x-gitea-signature": hmac(secret), "x-gitea-event": "issues", "x-gitea-delivery": "d" }),
    ).toMatchObject({
      signed: true,
      event: "issues",
      deliveryId: "d",
    });
    expect(read({ "x-forgejo-signature": hmac(secret), "x-forgejo-event": "issues" })).toMatchObject({
      signed: true,
      event: "issues",
    });
    for (const wrong of [hmac("other"), `sha256=${hmac(secret)}`, secret, "zz", ""])
      expect(read({ "x-gitea-signature": wrong }).signed, wrong).toBe(false);
    // GitHub's header of the same HMAC is not Gitea's.
    expect(read({ "x-hub-signature-256": `sha256=${hmac(secret)}` }).signed).toBe(false);
  });

  it("GitHub: X-Hub-Signature-256, and its ping", () => {
    const read = readForgeDelivery("github", secret, body, {
      "x-hub-signature-256": `sha256=${hmac(secret)}`,
      "x-github-event": "ping",
      "x-github-delivery": "g-1",
    });
    expect(read).toMatchObject({ signed: true, ping: true, deliveryId: "g-1" });
    expect(readForgeDelivery("github", secret, body, { "x-gitea-signature": hmac(secret) }).signed).toBe(
      false,
    );
  });
});
