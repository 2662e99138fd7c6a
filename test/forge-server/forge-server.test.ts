import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GitHubClient } from "../../src/forges/github.js";
import { tempDir } from "../helpers/cli.js";
import { type ScriptedForge, startScriptedForge } from "./server.js";

let forge: ScriptedForge;
let root: string;

beforeAll(async () => {
  root = tempDir("runyard-forge-server-");
  forge = await startScriptedForge(root);
  forge.createRepo("acme/app", { "README.md": "app\n" });
  forge.addToken("ghp_writer", "bot");
  forge.addToken("ghp_reader", "carol");
  forge.setPermission("bot", "write");
  forge.setPermission("carol", "read");
});

afterAll(() => forge?.close());

/** git as a child the event loop waits on: the scripted forge answers it from this process. */
const git = (cwd: string, ...args: string[]): Promise<{ status: number | null }> =>
  new Promise((resolve) => {
    const child = spawn("git", args, {
      cwd,
      stdio: "ignore",
      env: { ...process.env, GIT_TERMINAL_PROMPT: "0" },
    });
    child.on("close", (status) => resolve({ status }));
  });

describe("the scripted GitHub", () => {
  it("serves its repos over git smart HTTP: clone with a token, push only with write", async () => {
    const withToken = (token: string) =>
      forge.gitUrl("acme/app").replace("http://", `http://x-access-token:${token}@`);
    const clone = join(root, "clone");
    expect((await git(root, "clone", "-q", withToken("ghp_reader"), clone)).status).toBe(0);
    await git(clone, "checkout", "-q", "-b", "feature");
    await git(clone, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "x");
    expect((await git(clone, "push", "-q", withToken("ghp_reader"), "feature")).status).not.toBe(0);
    expect((await git(clone, "push", "-q", withToken("ghp_writer"), "feature")).status).toBe(0);
    expect((await git(root, "ls-remote", forge.gitUrl("acme/app"))).status).not.toBe(0);
  });

  it("answers runyard's GitHub client as GitHub does", async () => {
    const client = new GitHubClient(forge.url, "acme/app", "ghp_writer");
    expect(await client.repository()).toEqual({ cloneUrl: forge.gitUrl("acme/app"), defaultBranch: "main" });
    expect(await client.permission("bot")).toBe("write");
    expect(await client.permission("carol")).toBe("read");
    expect(await client.permission("mallory")).toBe("none");
    const pull = await client.openPullRequest({ head: "feature", base: "main", title: "T", body: "B" });
    expect(pull.number).toBeGreaterThan(0);
    await expect(
      client.openPullRequest({ head: "feature", base: "main", title: "T", body: "B" }),
    ).rejects.toThrow(/422: Validation Failed: A pull request already exists/);
    await expect(
      client.openPullRequest({ head: "nope", base: "main", title: "T", body: "B" }),
    ).rejects.toThrow(/422/);
    await client.comment({ pull: pull.number }, "done");
    expect(forge.comments.at(-1)).toMatchObject({ issue: pull.number, body: "done", user: "bot" });
    await expect(new GitHubClient(forge.url, "acme/app", "wrong").repository()).rejects.toThrow(
      /401: Bad credentials/,
    );
    await expect(
      new GitHubClient(forge.url, "acme/app", "ghp_reader").comment({ pull: pull.number }, "x"),
    ).rejects.toThrow(/403/);
  });

  it("signs its webhooks as GitHub does", async () => {
    let received: { signature?: string; event?: string; body: string } = { body: "" };
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        received = {
          signature: req.headers["x-hub-signature-256"] as string,
          event: req.headers["x-github-event"] as string,
          body,
        };
        res.end("ok");
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    const issue = forge.createIssue("acme/app", { title: "t", body: "b", user: "bot" });
    await forge.deliver(
      `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`,
      "s3cret",
      "issues",
      forge.payloads.labeled("acme/app", issue, "runyard", "bot"),
    );
    receiver.close();
    expect(received.event).toBe("issues");
    expect(received.signature).toBe(
      `sha256=${createHmac("sha256", "s3cret").update(received.body).digest("hex")}`,
    );
  });
});
