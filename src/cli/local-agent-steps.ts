/**
 * `runyard run`'s agent steps: each turn runs through the agent pipeline of a runner (the same
 * handler, workspaces and supervised turns), in this process, with the agents `runyard agents
 * install` put in `<home>/agents` or on PATH, and the credentials of this shell's environment, as
 * the user would run the agent by hand. Artifacts (diff, transcript) are kept in
 * `<home>/agent-steps/<run>/`.
 */
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { LocalStepRunner } from "../exec/local-runner.js";
import type { ProcessExecutor } from "../exec/process/process.js";
import { SupervisedAgentTurns } from "../runner/agent-turns.js";
import { AgentJobHandler } from "../runner/handlers/agent.js";
import type { AgentStepRunner } from "../workflow/agent-step.js";
import { agentStepEvent, agentStepJob, agentStepTask, agentTurnResult } from "../workflow/agent-step-task.js";
import { Workspaces } from "../workspace/workspaces.js";

/** The shell's settings of the built-in `openai` agent. */
const openaiSettings = ["OPENAI_API_KEY", "OPENAI_BASE_URL"] as const;

export function localAgentSteps(
  executor: ProcessExecutor,
  env: Record<string, string | undefined>,
  killGraceMs: number,
): AgentStepRunner {
  const home = resolve(env.RUNYARD_HOME ?? join(env.HOME ?? homedir(), ".runyard"));
  const root = join(home, "agent-steps");
  let handler: AgentJobHandler | undefined;
  const handlerOf = (): AgentJobHandler => {
    if (handler) return handler;
    const turns = new SupervisedAgentTurns({
      agentsHome: join(home, "agents"),
      env,
      launcher: { run: (request) => executor.run(request), close: async () => {} },
      stateRoot: join(root, "state"),
      tagPrefix: `run-${createHash("sha256").update(root).digest("hex").slice(0, 16)}`,
      sandboxed: executor.sandboxed,
    });
    const stepRunner = new LocalStepRunner(executor, { killGraceMs });
    handler = new AgentJobHandler({
      workspaces: new Workspaces({
        root: join(root, "workspaces"),
        retry: { gitRetries: 2, baseDelayMs: 1000 },
        env,
      }),
      turns,
      hostSecrets: executor.hostSecrets,
      upload: async (jobId, name, _contentType, content) => {
        const dir = join(root, "artifacts", jobId);
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const path = join(dir, name);
        await writeFile(path, content, { mode: 0o600 });
        return { path, size: Buffer.byteLength(content) };
      },
      stepRunner: stepRunner.withExposure({ runnerMadeCwd: true }),
      scratchRoot: join(root, "workspaces"),
      // The user's own run on the user's own machine, unconfined: the folders it names are the user's.
      folders: { roots: [], own: [home] },
      sandboxRefusal: (cwd) => executor.cwdRefusal(cwd),
    });
    return handler;
  };
  return {
    async turn(request, io) {
      // The user's own shell: its model keys and endpoints are the agent's, as by hand.
      // runyard's own `openai` loop reads its key and endpoint from the task, not the process.
      const own =
        request.spec.agent === "openai"
          ? Object.fromEntries(
              openaiSettings.flatMap((name) =>
                env[name] !== undefined ? [[name, env[name] as string]] : [],
              ),
            )
          : {};
      const task = agentStepTask(request, {
        env: own,
        confinement: "unconfined",
        secrets: own.OPENAI_API_KEY ? [own.OPENAI_API_KEY] : [],
      });
      const result = await handlerOf().run(agentStepJob(request, task), {
        signal: io.signal,
        emit: (event) => {
          const mapped = agentStepEvent(request, event);
          if (mapped) io.emit(mapped);
        },
      });
      return agentTurnResult(result);
    },
  };
}
