import { useEffect, useState } from "react";

/**
 * Pages live in the URL's hash (`#/runs/run_123`): the server serves one index.html at `/`, and
 * links, reloads and the back button work without it knowing the app's routes.
 */
export function useRoute(): string[] {
  const [hash, setHash] = useState(() => window.location.hash);
  useEffect(() => {
    const changed = () => setHash(window.location.hash);
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return hash.replace(/^#\/?/, "").split("?")[0]!.split("/").filter(Boolean).map(decodeURIComponent);
}

export function navigate(path: string): void {
  window.location.hash = path.startsWith("/") ? path : `/${path}`;
}

/** The query of the hash (`#/runs?status=failed`). */
export function routeQuery(): URLSearchParams {
  return new URLSearchParams(window.location.hash.split("?")[1] ?? "");
}
