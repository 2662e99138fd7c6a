/**
 * What the scripted forges share: their repos as bare git repos served over git smart HTTP
 * through `git http-backend` (as a forge serves them: clone with a token, push with one that may
 * write), and a request's body.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The token of HTTP basic auth (the password; forges take any user name with a token). */
export function basicToken(header: string | undefined): string | undefined {
  const basic = /^Basic (\S+)$/.exec(header ?? "")?.[1];
  return basic === undefined
    ? undefined
    : Buffer.from(basic, "base64").toString().split(":").slice(1).join(":");
}

/** Makes a bare repo `<reposRoot>/<repo>.git` with one commit of `files` on `main`. */
export function createBareRepo(
  root: string,
  reposRoot: string,
  repo: string,
  files: Record<string, string>,
): string {
  const bare = join(reposRoot, `${repo}.git`);
  const work = join(root, "seed", repo);
  mkdirSync(work, { recursive: true });
  const git = (cwd: string, ...args: string[]) => {
    const result = spawnSync("git", args, { cwd, encoding: "utf8" });
    if (result.status !== 0) throw new Error(`git ${args.join(" ")}: ${result.stderr}`);
  };
  git(root, "init", "-q", "--bare", "-b", "main", bare);
  git(bare, "config", "http.receivepack", "true");
  git(work, "init", "-q", "-b", "main");
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(work, name, ".."), { recursive: true });
    writeFileSync(join(work, name), content);
  }
  git(work, "add", "-A");
  git(work, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-q", "-m", "seed");
  git(work, "push", "-q", bare, "main");
  return bare;
}

/** Whether `branch` exists in the bare repo of `repo`. */
export function branchExists(reposRoot: string, repo: string, branch: string): boolean {
  const bare = join(reposRoot, `${repo}.git`);
  return spawnSync("git", ["--git-dir", bare, "rev-parse", "--verify", `refs/heads/${branch}`]).status === 0;
}

/**
 * `git http-backend` as CGI for `pathInfo` (`/OWNER/NAME.git/...`): clone and fetch for `user`,
 * push only when `mayWrite`; no user is a 401 asking for basic auth in `realm`.
 */
export async function serveGit(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  options: {
    reposRoot: string;
    pathInfo: string;
    user: string | undefined;
    mayWrite: boolean;
    realm: string;
  },
): Promise<void> {
  const pushing =
    url.pathname.endsWith("/git-receive-pack") || url.searchParams.get("service") === "git-receive-pack";
  if (!options.user || (pushing && !options.mayWrite)) {
    res.writeHead(401, { "www-authenticate": `Basic realm="${options.realm}"` });
    res.end();
    return;
  }
  const body = await readBody(req);
  const cgi = spawn("git", ["http-backend"], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      GIT_PROJECT_ROOT: options.reposRoot,
      GIT_HTTP_EXPORT_ALL: "1",
      PATH_INFO: options.pathInfo,
      QUERY_STRING: url.search.slice(1),
      REQUEST_METHOD: req.method ?? "GET",
      CONTENT_TYPE: req.headers["content-type"] ?? "",
      CONTENT_LENGTH: String(body.length),
      REMOTE_USER: options.user,
      REMOTE_ADDR: "127.0.0.1",
      ...(req.headers["content-encoding"]
        ? { HTTP_CONTENT_ENCODING: String(req.headers["content-encoding"]) }
        : {}),
    },
  });
  // http-backend that refuses a request answers on stdout without reading the body: its
  // answer is what the client gets, not an EPIPE here.
  cgi.stdin.on("error", () => undefined);
  cgi.stdin.end(body);
  const out: Buffer[] = [];
  for await (const chunk of cgi.stdout) out.push(chunk as Buffer);
  const all = Buffer.concat(out);
  const split = all.indexOf("\r\n\r\n");
  const head = all.subarray(0, split).toString();
  let status = 200;
  const headers: Record<string, string> = {};
  for (const line of head.split("\r\n")) {
    const at = line.indexOf(":");
    const name = line.slice(0, at).trim().toLowerCase();
    const value = line.slice(at + 1).trim();
    if (name === "status") status = Number(value.split(" ")[0]);
    else if (name) headers[name] = value;
  }
  res.writeHead(status, headers);
  res.end(all.subarray(split + 4));
}
