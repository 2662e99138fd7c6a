import { type FormEvent, useState } from "react";
import { type BotMode, botModes } from "../../../../src/core/bot-states.js";
import { answer, api, asSubmit, type BodyOf } from "../../api.js";
import { type EnvRow, EnvRows, envRecord } from "../agents/env-rows.js";
import { ErrorNote } from "../agents/error-note.js";

type StartBot = BodyOf<"startBot">;
type RestartPolicy = NonNullable<StartBot["restart"]>;

/** The restart policies, as the form offers them. */
const restartPolicies: ReadonlyArray<[RestartPolicy, string]> = [
  ["on-failure", "on a crash"],
  ["always", "always"],
  ["no", "never"],
];

const modeLabels: Record<BotMode, string> = {
  simple: "Simple (files)",
  custom: "Custom (Dockerfile)",
  image: "Image",
};

interface SourceFile {
  name: string;
  text: string;
}

/** Start a bot in one of its three modes: POST /api/bots (src/server/runs/bot-spec.ts). */
export function StartBotForm(props: { onStarted: () => void }) {
  const [mode, setMode] = useState<BotMode>("simple");
  const [name, setName] = useState("");
  const [files, setFiles] = useState<SourceFile[]>([{ name: "bot.py", text: "" }]);
  const [entrypoint, setEntrypoint] = useState("bot.py");
  const [requirements, setRequirements] = useState("");
  const [gitUrl, setGitUrl] = useState("");
  const [gitRef, setGitRef] = useState("");
  const [archive, setArchive] = useState<{ name: string; base64: string } | null>(null);
  const [image, setImage] = useState("");
  const [user, setUser] = useState("");
  const [password, setPassword] = useState("");
  const [restart, setRestart] = useState<RestartPolicy>("on-failure");
  const [env, setEnv] = useState<EnvRow[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const source = (): Omit<StartBot, "name" | "mode" | "restart" | "env"> => {
    if (mode === "simple")
      return {
        files: Object.fromEntries(files.filter((f) => f.name.trim()).map((f) => [f.name.trim(), f.text])),
        entrypoint: entrypoint.trim(),
        requirements: requirements
          .split(/\s+/)
          .map((r) => r.trim())
          .filter(Boolean),
      };
    if (mode === "custom")
      return archive
        ? { archive: archive.base64 }
        : { git: { url: gitUrl.trim(), ...(gitRef.trim() ? { ref: gitRef.trim() } : {}) } };
    return {
      image: image.trim(),
      ...(user || password ? { registry: { username: user, password } } : {}),
    };
  };

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await answer(
        api.POST("/api/bots", {
          body: { name: name.trim(), mode, ...source(), restart, env: envRecord(env) },
          ...asSubmit,
        }),
      );
      props.onStarted();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  const addFiles = async (list: FileList | null) => {
    if (!list) return;
    const read = await Promise.all(
      [...list].map(async (file) => ({ name: file.name, text: await file.text() })),
    );
    setFiles((old) => [...old.filter((f) => f.name.trim() || f.text), ...read]);
  };

  const readArchive = async (list: FileList | null) => {
    const file = list?.[0];
    if (!file) return setArchive(null);
    const bytes = new Uint8Array(await file.arrayBuffer());
    let binary = "";
    // In slices: String.fromCharCode with a whole archive's bytes as arguments overflows the stack.
    for (let i = 0; i < bytes.length; i += 0x8000)
      binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    setArchive({ name: file.name, base64: btoa(binary) });
  };

  return (
    <form className="form-grid" onSubmit={submit} aria-label="Start a bot">
      <div className="wide tabs" role="radiogroup" aria-label="Mode">
        {botModes.map((m) => (
          <label key={m} className="check">
            <input type="radio" name="bot-mode" checked={mode === m} onChange={() => setMode(m)} />{" "}
            {modeLabels[m]}
          </label>
        ))}
      </div>
      <label>
        Name
        <input value={name} onChange={(e) => setName(e.target.value)} required placeholder="echo-bot" />
      </label>
      <label>
        Restart
        <select
          value={restart}
          onChange={(e) => {
            const picked = restartPolicies.find(([policy]) => policy === e.target.value);
            if (picked) setRestart(picked[0]);
          }}
        >
          {restartPolicies.map(([policy, label]) => (
            <option key={policy} value={policy}>
              {label}
            </option>
          ))}
        </select>
      </label>
      {mode === "simple" ? (
        <>
          {files.map((file, index) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: rows are only appended or removed
            <fieldset className="wide" key={index}>
              <legend>File {index + 1}</legend>
              <label>
                File name
                <input
                  value={file.name}
                  onChange={(e) =>
                    setFiles(files.map((f, i) => (i === index ? { ...f, name: e.target.value } : f)))
                  }
                />
              </label>
              <label>
                Content
                <textarea
                  rows={6}
                  spellCheck={false}
                  value={file.text}
                  onChange={(e) =>
                    setFiles(files.map((f, i) => (i === index ? { ...f, text: e.target.value } : f)))
                  }
                />
              </label>
              <button type="button" onClick={() => setFiles(files.filter((_, i) => i !== index))}>
                Remove file
              </button>
            </fieldset>
          ))}
          <div className="wide actions">
            <button type="button" onClick={() => setFiles([...files, { name: "", text: "" }])}>
              Add file
            </button>
            <label>
              Or upload files
              <input type="file" multiple onChange={(e) => addFiles(e.target.files)} />
            </label>
          </div>
          <label>
            Entrypoint (.py runs Python, .js Node)
            <input value={entrypoint} onChange={(e) => setEntrypoint(e.target.value)} required />
          </label>
          <label>
            Requirements (space-separated)
            <input
              value={requirements}
              onChange={(e) => setRequirements(e.target.value)}
              placeholder="requests==2.32.3"
            />
          </label>
        </>
      ) : null}
      {mode === "custom" ? (
        <>
          <label>
            Git URL (a Dockerfile at its top)
            <input value={gitUrl} onChange={(e) => setGitUrl(e.target.value)} disabled={archive !== null} />
          </label>
          <label>
            Git ref
            <input value={gitRef} onChange={(e) => setGitRef(e.target.value)} disabled={archive !== null} />
          </label>
          <label>
            Or an archive (tar, tar.gz, zip)
            <input type="file" accept=".tar,.tgz,.gz,.zip" onChange={(e) => readArchive(e.target.files)} />
          </label>
        </>
      ) : null}
      {mode === "image" ? (
        <>
          <label>
            Image reference
            <input
              value={image}
              onChange={(e) => setImage(e.target.value)}
              required
              placeholder="ghcr.io/user/bot:v1"
            />
          </label>
          <label>
            Registry user (optional)
            <input value={user} onChange={(e) => setUser(e.target.value)} autoComplete="off" />
          </label>
          <label>
            Registry password
            <input
              type="password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              autoComplete="off"
            />
          </label>
        </>
      ) : null}
      <div className="wide">
        <EnvRows legend="Environment" rows={env} onChange={setEnv} />
      </div>
      <div className="wide actions">
        <button type="submit" disabled={busy}>
          Start bot
        </button>
        <ErrorNote error={error} />
      </div>
    </form>
  );
}
