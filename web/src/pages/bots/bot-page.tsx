import { useState } from "react";
import { answer, api } from "../../api.js";
import { formatDate } from "../../dates.js";
import { navigate } from "../../router.js";
import { ErrorNote } from "../agents/error-note.js";
import "./bot-history.css";
import { BotActions } from "./bot-actions.js";
import { BotAlerts } from "./bot-alerts.js";
import { BotEnv } from "./bot-env.js";
import { BotLogSearch } from "./bot-log-search.js";
import { BotLogs } from "./bot-logs.js";
import { BotResourceChart } from "./bot-resource-chart.js";
import { BotVersions } from "./bot-versions.js";
import { cpu, isUp, memory, uptime } from "./bot-view.js";
import { BotWebhook } from "./bot-webhook.js";
import { usePoll } from "./use-poll.js";

/** One bot: its status (polled), its logs live, its build output, stop and remove. */
export function BotPage(props: { name: string }) {
  const {
    data: bot,
    error,
    reload,
  } = usePoll(() => answer(api.GET("/api/bots/{name}", { params: { path: { name: props.name } } })), 2500);
  const [build, setBuild] = useState(false);

  return (
    <>
      <p>
        <a href="#/bots">← Bots</a>
      </p>
      <h1>{props.name}</h1>
      <ErrorNote error={error} />
      {bot ? (
        <>
          <dl className="stats" aria-label="Status">
            <div>
              <dt className="meta">State</dt>
              <dd className={`state-${bot.state}`} data-testid="bot-state">
                {bot.state}
              </dd>
            </div>
            <div>
              <dt className="meta">Health</dt>
              <dd data-testid="bot-health">
                {bot.health
                  ? `${bot.health.status} (${bot.health.failures} failed in a row)`
                  : "no health check"}
              </dd>
            </div>
            <Item label="Version" value={String(bot.version)} />
            <Item label="Uptime" value={uptime(bot.uptime_secs)} />
            <Item label="Restarts" value={`${bot.restarts} (${bot.restart_policy})`} />
            <Item label="Exit code" value={bot.exit_code === null ? "" : String(bot.exit_code)} />
            <Item label="Out of memory" value={bot.oom_killed ? "yes (OOM killed)" : "no"} />
            <Item label="Memory" value={memory(bot.memory_bytes)} />
            <Item label="CPU" value={cpu(bot.cpu_percent)} />
            <Item label="Mode" value={bot.mode} />
            <Item label="Image" value={bot.image ?? ""} />
            <Item label="Expires" value={formatDate(bot.expires_at)} />
          </dl>
          {bot.error ? (
            <p className="error">
              {bot.error.code}: {bot.error.message}
              {bot.error.hint ? <span className="hint">{bot.error.hint}</span> : null}
            </p>
          ) : null}
          {bot.health ? (
            <details className="section" open={bot.health.status !== "healthy"}>
              <summary>Last health probe ({formatDate(bot.health.at)})</summary>
              <pre className="log-view" data-testid="bot-probe">
                {bot.health.output || "(no output)"}
              </pre>
            </details>
          ) : null}
          <BotActions bot={bot} onDone={reload} onRemoved={() => navigate("/bots")} />
          {bot.last_logs.length > 0 ? (
            <details className="section">
              <summary>Last lines of the previous container</summary>
              <pre className="log-view">{bot.last_logs.join("\n")}</pre>
            </details>
          ) : null}
          <section className="section" aria-label="Output">
            <div className="tabs" role="tablist">
              <button type="button" role="tab" aria-selected={!build} onClick={() => setBuild(false)}>
                Logs
              </button>
              <button type="button" role="tab" aria-selected={build} onClick={() => setBuild(true)}>
                Build output
              </button>
            </div>
            <BotLogs name={bot.name} runId={bot.run_id} build={build} />
          </section>
          <BotLogSearch name={bot.name} />
          <BotResourceChart name={bot.name} />
          <BotAlerts name={bot.name} />
          <BotWebhook name={bot.name} />
          <BotVersions name={bot.name} current={bot.version} live={isUp(bot.state)} onDone={reload} />
          <BotEnv name={bot.name} live={isUp(bot.state)} onDone={reload} />
        </>
      ) : error ? null : (
        <p className="loading">Loading…</p>
      )}
    </>
  );
}

function Item(props: { label: string; value: string }) {
  return (
    <div>
      <dt className="meta">{props.label}</dt>
      <dd>{props.value || "—"}</dd>
    </div>
  );
}
