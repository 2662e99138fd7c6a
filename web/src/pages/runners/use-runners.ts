import { useEffect, useState } from "react";
import { answer, api, type Schema } from "../../api.js";

/** A runner as `GET /api/runners` answers it (the ADOS runners list's fields and more). */
export type Runner = Schema<"Runner">;

/** How often the list is asked for while the page is visible: runners come and go in seconds. */
export const pollMs = 2000;

/**
 * The runners, asked for every two seconds while the page is visible (a hidden tab asks nothing,
 * and asks at once when shown again).
 */
export function useRunners(): { runners: Runner[] | undefined; error: string | null } {
  const [runners, setRunners] = useState<Runner[] | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const poll = async () => {
      timer = undefined;
      try {
        const list = await answer(api.GET("/api/runners"));
        if (stopped) return;
        setRunners(list);
        setError(null);
      } catch (caught) {
        if (stopped) return;
        setError(caught instanceof Error ? caught.message : String(caught));
      }
      if (!stopped && document.visibilityState === "visible") timer = setTimeout(poll, pollMs);
    };
    const visibility = () => {
      if (document.visibilityState === "visible" && timer === undefined) void poll();
      else if (document.visibilityState !== "visible" && timer !== undefined) {
        clearTimeout(timer);
        timer = undefined;
      }
    };
    void poll();
    document.addEventListener("visibilitychange", visibility);
    return () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      document.removeEventListener("visibilitychange", visibility);
    };
  }, []);

  return { runners, error };
}
