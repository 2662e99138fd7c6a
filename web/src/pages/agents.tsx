import "./agents/agents.css";
import { AgentRunList } from "./agents/agent-run-list.js";
import { AgentRunPage } from "./agents/agent-run-page.js";
import { StartAgentForm } from "./agents/start-agent-form.js";

/** Agents (issue 11): `#/agents` starts a task and lists runs; `#/agents/<run_id>` follows one. */
export function AgentsPage(props: { route: string[] }) {
  const runId = props.route[0];
  if (runId) return <AgentRunPage key={runId} runId={runId} />;
  return (
    <>
      <h1>Agents</h1>
      <section className="section" aria-labelledby="start-agent">
        <h2 id="start-agent">Start a task</h2>
        <StartAgentForm />
      </section>
      <section className="section" aria-labelledby="agent-runs">
        <h2 id="agent-runs">Agent runs</h2>
        <AgentRunList />
      </section>
    </>
  );
}
