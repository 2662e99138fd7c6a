import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, tempDir } from "./helpers/cli.js";
import {
  adminToken,
  api,
  freePort,
  isFinal,
  type Proc,
  readEvents,
  startCli,
  submit,
  waitForRun,
} from "./helpers/server.js";

/**
 * `runyard up` links its own runner to its server inside the process: the runner protocol's
 * messages without a loopback WebSocket. What a user sees stays: runs go through, and a revoked
 * token ends the link and is refused as a socket's would be.
 */

/** The TCP connections (IPv4 and IPv6) process `pid` holds that are established, by their ports. */
function establishedPorts(pid: number): Array<{ local: number; remote: number }> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    const target = (() => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return "";
      }
    })();
    const match = /^socket:\[(\d+)\]$/.exec(target);
    if (match?.[1]) inodes.add(match[1]);
  }
  const found: Array<{ local: number; remote: number }> = [];
  for (const table of ["tcp", "tcp6"]) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local address, remote address, state (01: established), ..., inode (the tenth field)
      if (fields.length < 10 || fields[3] !== "01" || !inodes.has(fields[9] ?? "")) continue;
      const port = (address: string | undefined) => Number.parseInt(address?.split(":")[1] ?? "", 16);
      found.push({ local: port(fields[1]), remote: port(fields[2]) });
    }
  }
  return found;
}

describe("`runyard up`'s own runner", () => {
  let up: Proc;
  let url = "";
  let port = 0;

  beforeAll(async () => {
    port = await freePort();
    up = startCli(["up", "--port", String(port), "--home", tempDir("runyard-up-link-")], {
      RUNYARD_ADMIN_TOKEN: adminToken,
      RUNYARD_LOG_LEVEL: "info",
    });
    await up.waitFor("local runner connected", 60_000);
    url = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await up?.kill();
  });

  it("is linked without a socket: the process holds no connection to its own port, and runs go through", async () => {
    const pid = up.child.pid as number;
    // Before any request of ours: a runner on a loopback WebSocket holds two ends on the port.
    expect(establishedPorts(pid).filter((c) => c.local === port || c.remote === port)).toEqual([]);
    const runId = await submit(
      url,
      `name: linked\nsteps:\n  - name: hello\n    command: echo "through the link"\n`,
    );
    const run = await waitForRun(url, runId, isFinal);
    expect(run.status).toBe("success");
    const output = (await readEvents(url, runId)).filter((event) => event.type === "step.output");
    expect(JSON.stringify(output)).toContain("through the link");
  });

  it("loses its link when its token is revoked, and is refused as a socket's runner is", async () => {
    const tokens = await api<Array<{ id: string; name: string; kind: string }>>(url, "GET", "/api/tokens");
    const local = tokens.body.find((t) => t.name === "local runner (runyard up)" && t.kind === "runner");
    expect(local, JSON.stringify(tokens.body)).toBeDefined();
    const revoke = await runCli(["token", "revoke", local?.id ?? ""], {
      env: { RUNYARD_SERVER_URL: url, RUNYARD_TOKEN: adminToken },
    });
    expect(revoke.code, revoke.stderr).toBe(0);
    await up.waitFor("the server closed the connection: runner token revoked", 30_000);
    // It tries again, as a runner on a socket does, and the hub refuses the revoked token.
    await up.waitFor(/the server refused the runner token \(HTTP 401: the runner token is not valid/, 30_000);
    const runners = await api<Array<{ status: string; name?: string }>>(url, "GET", "/api/runners");
    expect(
      runners.body.every((r) => r.status === "offline"),
      JSON.stringify(runners.body),
    ).toBe(true);
  });
});
