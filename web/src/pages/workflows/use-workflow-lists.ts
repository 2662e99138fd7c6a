import { useEffect, useState } from "react";
import { type AnswerOf, answer, api, type Schema } from "../../api.js";

export type SavedWorkflowRow = AnswerOf<"listWorkflows">["workflows"][number];
export type Schedule = Schema<"Schedule">;
export type Hook = Schema<"Hook">;

export interface WorkflowLists {
  workflows: SavedWorkflowRow[];
  schedules: Schedule[];
  hooks: Hook[];
}

/**
 * The saved workflows, their schedules and the hooks that start them, read together; `reload`
 * reads them again (after a promotion changed which version and schedules are live).
 */
export function useWorkflowLists(): {
  lists: WorkflowLists | undefined;
  error: string | null;
  reload: () => void;
} {
  const [lists, setLists] = useState<WorkflowLists | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [round, setRound] = useState(0);
  // biome-ignore lint/correctness/useExhaustiveDependencies: `round` is what asks for a new read
  useEffect(() => {
    Promise.all([
      answer(api.GET("/api/workflows")),
      answer(api.GET("/api/schedules")),
      answer(api.GET("/api/hooks")),
    ]).then(
      ([saved, scheduled, hooked]) => {
        setLists({ workflows: saved.workflows, schedules: scheduled.schedules, hooks: hooked.hooks });
        setError(null);
      },
      (caught: unknown) => setError(caught instanceof Error ? caught.message : String(caught)),
    );
  }, [round]);
  return { lists, error, reload: () => setRound((n) => n + 1) };
}
