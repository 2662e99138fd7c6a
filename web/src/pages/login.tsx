import { type FormEvent, useState } from "react";
import { type ApiError, answer, api, asApiError, setToken } from "../api.js";
import type { Caller } from "../caller.js";

/** Log in with a user's name and password, or paste an API token (the admin token of `runyard up`). */
export function LoginPage(props: { onLogin: (caller: Caller) => void }) {
  const [mode, setMode] = useState<"password" | "token">("password");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [token, setTokenText] = useState("");
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (mode === "password") {
        const session = await answer(api.POST("/api/auth/login", { body: { username, password } }));
        setToken(session.token);
      } else {
        setToken(token.trim());
      }
      props.onLogin(await answer(api.GET("/api/auth/whoami")));
    } catch (caught) {
      setToken(null);
      setError(asApiError(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="login">
      <h1>runyard</h1>
      <form onSubmit={submit} aria-label="Log in">
        <div role="tablist" className="tabs">
          <button
            type="button"
            role="tab"
            aria-selected={mode === "password"}
            onClick={() => setMode("password")}
          >
            User
          </button>
          <button type="button" role="tab" aria-selected={mode === "token"} onClick={() => setMode("token")}>
            API token
          </button>
        </div>
        {mode === "password" ? (
          <>
            <label>
              Username
              <input
                autoComplete="username"
                value={username}
                onChange={(e) => setUsername(e.target.value)}
                required
              />
            </label>
            <label>
              Password
              <input
                type="password"
                autoComplete="current-password"
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                required
              />
            </label>
          </>
        ) : (
          <label>
            Token (`runyard up` prints the admin token)
            <input type="password" value={token} onChange={(e) => setTokenText(e.target.value)} required />
          </label>
        )}
        <button type="submit" disabled={busy}>
          {busy ? "Logging in…" : "Log in"}
        </button>
        {error && (
          <p role="alert" className="error">
            {error.message}
            {error.hint && <span className="hint">{error.hint}</span>}
          </p>
        )}
      </form>
    </main>
  );
}
