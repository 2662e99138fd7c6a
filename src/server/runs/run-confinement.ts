import type { Confinement } from "../../core/confinement.js";
import { type Actor, isPlatformAdminActor } from "../acting-for.js";
import { isPlatformAdmin, type Principal } from "../auth.js";

/**
 * What a run's confinement stems from: who submits or triggers it, and what it runs of someone
 * else's. A run is unconfined only when every one of them is a platform admin's.
 */
export interface ConfinementSources {
  /**
   * Who submits it (a request's principal) or triggers it (a hook's or schedule's owner, as they
   * are now). Absent: a call's child run, whose `earlier` (its parent's) speaks for its submitter.
   */
  submitter?: { principal: Principal | undefined } | { actor: Actor | undefined };
  /** The run it repeats with the same text (a retry, a re-run) or that calls it: what that run stored. */
  earlier?: Confinement;
  /** The saved workflow version it runs: whether a platform admin saved it. */
  saved?: { unrestricted: boolean };
}

/**
 * The one decision of how far a run may reach (core/confinement.ts): made once at submit, stored
 * on the run and carried on its jobs. The lesser of its sources: a platform admin's re-run of a
 * member's workflow, or run of a member's saved version, is confined.
 */
export function runConfinement(sources: ConfinementSources): Confinement {
  const { submitter, earlier, saved } = sources;
  const admin =
    submitter === undefined
      ? earlier !== undefined
      : "principal" in submitter
        ? isPlatformAdmin(submitter.principal)
        : isPlatformAdminActor(submitter.actor);
  const unconfined = admin && earlier !== "confined" && saved?.unrestricted !== false;
  return unconfined ? "unconfined" : "confined";
}
