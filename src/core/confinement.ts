/**
 * How far a run may reach: decided once, when it is submitted (server/runs/run-confinement.ts),
 * carried on the run and each of its jobs, and read by the server and the runner alike.
 *
 * - `confined` (anyone but a platform admin): its steps' and agent tasks' `cwd` only under the
 *   operator's roots (core/work-folders.ts), its direct hosts, notify URLs and MCP servers only
 *   where the server's outbound rules allow, its containers held to a member's rules, and on a
 *   shared runner a network of its own.
 * - `unconfined` (a platform admin's run): any folder but runyard's own, any destination.
 *
 * The wire keeps the fields stored runs and running runners know (a workflow run's
 * `unrestricted_outbound`, a step attempt's `unrestricted`, an agent task's `cwd_confined`):
 * each is read and written only through its helper below.
 */
export type Confinement = "confined" | "unconfined";

/** A workflow run's stored spec: `unrestricted_outbound: true` on an unconfined run, absent else. */
export const workflowSpecConfinement = {
  read(spec: { unrestricted_outbound?: true | undefined }): Confinement {
    return spec.unrestricted_outbound === true ? "unconfined" : "confined";
  },
  write(confinement: Confinement): { unrestricted_outbound?: true } {
    return confinement === "unconfined" ? { unrestricted_outbound: true } : {};
  },
};

/**
 * A step attempt (and a runner's network owner): `unrestricted: true` when sent by an
 * unconfined run; absent (a member's run, or a server that predates the field), confined.
 */
export const stepConfinement = {
  read(request: { unrestricted?: true | undefined }): Confinement {
    return request.unrestricted === true ? "unconfined" : "confined";
  },
  write(confinement: Confinement): { unrestricted?: true } {
    return confinement === "unconfined" ? { unrestricted: true } : {};
  },
};

/** An agent task: `cwd_confined`, true unless an unconfined run sent it (absent: an older server's, true). */
export const agentTaskConfinement = {
  read(task: { cwd_confined: boolean }): Confinement {
    return task.cwd_confined ? "confined" : "unconfined";
  },
  write(confinement: Confinement): { cwd_confined: boolean } {
    return { cwd_confined: confinement === "confined" };
  },
};
