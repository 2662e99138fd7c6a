import { type FormEvent, useEffect, useState } from "react";
import { answer, api, asSubmit, type BodyOf } from "../../api.js";
import { navigate } from "../../router.js";
import { type EnvRow, EnvRows, envRecord } from "./env-rows.js";
import { ErrorNote } from "./error-note.js";

/** The agents runyard knows (routes/agents.ts), offered when GET /health/agents says nothing. */
const knownAgents = ["claude_code", "codex", "opencode", "gemini", "copilot", "openai"];

/** Start an agent task: POST /api/runs {kind:"agent"} (src/server/runs/agent-spec.ts), then its page. */
export function StartAgentForm() {
  // Shown once GET /health/agents answers: a list that reordered itself under the pointer would
  // take a click meant for one agent on another.
  const [agents, setAgents] = useState<string[] | null>(null);
  const [picked, setPicked] = useState<string[]>([]);
  // Per agent no runner offers: why ("not installed"); unknown until GET /health/agents answers.
  const [missing, setMissing] = useState<Map<string, string>>(new Map());
  const [repoUrl, setRepoUrl] = useState("");
  const [base, setBase] = useState("");
  const [branch, setBranch] = useState("");
  // Off, as `runyard agent` without `--push`: a push leaves the machine, so it is asked for.
  const [push, setPush] = useState(false);
  const [prompt, setPrompt] = useState("");
  const [title, setTitle] = useState("");
  const [model, setModel] = useState("");
  const [tokens, setTokens] = useState("");
  const [usd, setUsd] = useState("");
  const [timeout, setTimeoutSecs] = useState("300");
  const [env, setEnv] = useState<EnvRow[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    answer(api.GET("/health/agents")).then(
      (health) => {
        // Usable ones first: those a run can get now, here or on a connected runner.
        const usable = new Set([
          ...health.on_runners,
          ...health.agents.filter((a) => a.usable).map((a) => a.name),
        ]);
        const names = [...new Set([...usable, ...knownAgents])];
        setAgents(names);
        const installed = new Set(health.agents.filter((a) => a.installed).map((a) => a.name));
        setMissing(
          new Map(
            names
              .filter((name) => !usable.has(name))
              .map((name) => [name, installed.has(name) ? "not usable here" : "not installed"]),
          ),
        );
        setPicked((old) => (old.length > 0 ? old : [...usable].slice(0, 1)));
      },
      () => setAgents(knownAgents),
    );
  }, []);

  const toggle = (name: string) =>
    setPicked((old) => (old.includes(name) ? old.filter((n) => n !== name) : [...old, name]));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const budget = {
      ...(tokens ? { tokens: Number(tokens) } : {}),
      ...(usd ? { usd: Number(usd) } : {}),
    };
    const body: BodyOf<"submitRun"> = {
      kind: "agent",
      ...(picked.length === 1 ? { agent: picked[0] } : picked.length > 1 ? { agents: picked } : {}),
      ...(prompt.trim() ? { prompt } : {}),
      ...(title.trim() ? { title: title.trim() } : {}),
      ...(model.trim() ? { model: model.trim() } : {}),
      ...(repoUrl.trim()
        ? {
            repo: {
              url: repoUrl.trim(),
              ...(base.trim() ? { base: base.trim() } : {}),
              ...(branch.trim() ? { branch: branch.trim() } : {}),
              push,
            },
          }
        : {}),
      ...(Object.keys(budget).length > 0 ? { budget } : {}),
      ...(timeout ? { timeout_secs: Number(timeout) } : {}),
      env: envRecord(env),
    };
    try {
      const run = await answer(api.POST("/api/runs", { body, ...asSubmit }));
      navigate(`/agents/${encodeURIComponent(run.run_id)}`);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="form-grid" onSubmit={submit} aria-label="Start an agent task">
      <fieldset className="wide">
        <legend>Agents (two or more: a fan-out, side by side)</legend>
        {agents === null ? (
          <p className="meta">Looking for the agents this server and its runners offer…</p>
        ) : (
          <div className="actions">
            {agents.map((name) => (
              <label key={name} className="check">
                <input type="checkbox" checked={picked.includes(name)} onChange={() => toggle(name)} /> {name}
                {missing.has(name) ? <span className="meta"> ({missing.get(name)})</span> : null}
              </label>
            ))}
          </div>
        )}
      </fieldset>
      <label className="wide">
        Prompt
        <textarea rows={4} value={prompt} onChange={(e) => setPrompt(e.target.value)} />
      </label>
      <label>
        Title (instead of or with a prompt)
        <input value={title} onChange={(e) => setTitle(e.target.value)} maxLength={200} />
      </label>
      <label>
        Model
        <input value={model} onChange={(e) => setModel(e.target.value)} placeholder="the agent's default" />
      </label>
      <label>
        Repository URL
        <input
          value={repoUrl}
          onChange={(e) => setRepoUrl(e.target.value)}
          placeholder="https://… (no token)"
        />
      </label>
      <label>
        Base branch
        <input value={base} onChange={(e) => setBase(e.target.value)} placeholder="the default branch" />
      </label>
      <label>
        New branch
        <input
          value={branch}
          onChange={(e) => setBranch(e.target.value)}
          placeholder="runyard/<run>-<agent>"
        />
      </label>
      <label className="check">
        <span>
          <input type="checkbox" checked={push} onChange={(e) => setPush(e.target.checked)} /> Push the branch
        </span>
      </label>
      <label>
        Budget: tokens
        <input type="number" min={1} value={tokens} onChange={(e) => setTokens(e.target.value)} />
      </label>
      <label>
        Budget: USD
        <input type="number" min={0} step="0.01" value={usd} onChange={(e) => setUsd(e.target.value)} />
      </label>
      <label>
        Timeout (seconds)
        <input
          type="number"
          min={1}
          max={86400}
          value={timeout}
          onChange={(e) => setTimeoutSecs(e.target.value)}
        />
      </label>
      <div className="wide">
        <EnvRows legend="Environment for the agent (provider URL, keys)" rows={env} onChange={setEnv} />
      </div>
      <div className="wide actions">
        <button type="submit" disabled={busy}>
          Start
        </button>
        <ErrorNote error={error} />
      </div>
    </form>
  );
}
