import { lazy, Suspense, useEffect, useState } from "react";
import { answer, api, currentToken, setToken, whenUnauthorized } from "./api.js";
import type { Caller } from "./caller.js";
import { Layout } from "./layout.js";
import { LoginPage } from "./pages/login.js";
import { useRoute } from "./router.js";

// Each page loads when opened: the first page stays small (issue 11: under 200 KB gzipped).
const pages: Record<string, React.LazyExoticComponent<(props: { route: string[] }) => React.ReactElement>> = {
  run: lazy(() => import("./pages/run-workflow.js").then((m) => ({ default: m.RunWorkflowPage }))),
  runs: lazy(() => import("./pages/runs.js").then((m) => ({ default: m.RunsPage }))),
  workflows: lazy(() => import("./pages/workflows.js").then((m) => ({ default: m.WorkflowsPage }))),
  agents: lazy(() => import("./pages/agents.js").then((m) => ({ default: m.AgentsPage }))),
  bots: lazy(() => import("./pages/bots.js").then((m) => ({ default: m.BotsPage }))),
  runners: lazy(() => import("./pages/runners.js").then((m) => ({ default: m.RunnersPage }))),
  usage: lazy(() => import("./pages/usage.js").then((m) => ({ default: m.UsagePage }))),
};

export function App() {
  const route = useRoute();
  const [caller, setCaller] = useState<Caller | null | undefined>(undefined);

  useEffect(() => {
    const logout = () => {
      setToken(null);
      setCaller(null);
    };
    const stop = whenUnauthorized(logout);
    if (!currentToken()) setCaller(null);
    else answer(api.GET("/api/auth/whoami")).then(setCaller, logout);
    return stop;
  }, []);

  if (caller === undefined) return <p className="loading">Loading…</p>;
  if (caller === null) return <LoginPage onLogin={setCaller} />;
  const name = route[0] ?? "runs";
  const Page = pages[name];
  return (
    <Layout caller={caller} current={name} onLogout={() => setCaller(null)}>
      <Suspense fallback={<p className="loading">Loading…</p>}>
        {Page ? <Page route={route.slice(1)} /> : <p role="alert">No page {name}.</p>}
      </Suspense>
    </Layout>
  );
}
