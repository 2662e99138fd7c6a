import { describe, expect, inject, it } from "vitest";
import { createTestDatabase } from "../../test/helpers/postgres.js";
import type { FleetEnvelope } from "./fleet-link.js";
import { postgresLink } from "./postgres-link.js";

const adminUrl = inject("postgresAdminUrl");

/** Resolves the first `count` messages `link` hears, in the order heard. */
function hear(link: ReturnType<typeof postgresLink>, count: number): Promise<FleetEnvelope[]> {
  const heard: FleetEnvelope[] = [];
  return new Promise((resolve) =>
    link.onMessage((message) => {
      heard.push(message);
      if (heard.length === count) resolve(heard);
    }),
  );
}

describe.skipIf(!adminUrl)("the fleet link on PostgreSQL", () => {
  it("gives every replica, the sender too, each message once and in the order sent", async () => {
    const url = await createTestDatabase(adminUrl);
    const [sender, other] = [postgresLink(url, undefined, "sender"), postgresLink(url, undefined, "other")];
    try {
      const [heardBySender, heardByOther] = [hear(sender, 60), hear(other, 60)];
      // Each listens once its connection is open (`lead` waits for it).
      await Promise.all([sender.lead(), other.lead()]);
      const sent = (seq: number): FleetEnvelope => ({ type: "events", run_id: "run_a", seq, from: "sender" });
      // Forty in one turn of the event loop, then twenty more in the next turns, one at a time.
      for (let seq = 1; seq <= 40; seq++) sender.notify(sent(seq));
      for (let seq = 41; seq <= 60; seq++) {
        await new Promise((resolve) => setImmediate(resolve));
        sender.notify(sent(seq));
      }
      const expected = Array.from({ length: 60 }, (_, i) => sent(i + 1));
      expect(await heardByOther).toEqual(expected);
      expect(await heardBySender).toEqual(expected);
    } finally {
      await Promise.all([sender.close(), other.close()]);
    }
  });
});
