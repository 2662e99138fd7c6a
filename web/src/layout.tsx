import type { ReactNode } from "react";
import { answer, api, setToken } from "./api.js";
import type { Caller } from "./caller.js";
import { RetryNotice } from "./retry-notice.js";

const sections = [
  ["run", "Run"],
  ["runs", "Runs"],
  ["workflows", "Workflows"],
  ["agents", "Agents"],
  ["bots", "Bots"],
  ["runners", "Runners"],
  ["usage", "Usage"],
] as const;

export function Layout(props: {
  caller: Caller;
  current: string;
  onLogout: () => void;
  children: ReactNode;
}) {
  const logout = async () => {
    // A session ends on the server too; an API token is not a session: the server leaves it
    // valid (and says so), the tab forgets it.
    await answer(api.POST("/api/auth/logout")).catch(() => undefined);
    setToken(null);
    props.onLogout();
  };
  return (
    <div className="shell">
      <header className="top">
        <a className="brand" href="#/runs">
          runyard
        </a>
        <nav aria-label="Sections">
          {sections.map(([path, label]) => (
            <a key={path} href={`#/${path}`} aria-current={props.current === path ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span className="who">
          {props.caller.username ?? props.caller.token_name ?? props.caller.kind}
          {props.caller.tenant_id ? ` · ${props.caller.tenant_id}` : ""}
        </span>
        <button type="button" onClick={logout}>
          Log out
        </button>
      </header>
      <RetryNotice />
      <main>{props.children}</main>
    </div>
  );
}
