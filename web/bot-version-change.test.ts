import { describe, expect, it } from "vitest";

interface Version {
  version: number;
  state: string;
  reason: string;
  run_id: null;
  image: string | null;
  summary: Record<string, unknown>;
  error: null;
  created_by: null;
  created_at: string;
  finished_at: null;
}
interface ChangeModule {
  versionChanges(version: Version, versions: Version[]): string[];
}
// Loaded by a path the server's type check does not follow, as bot-chart-marks.test.ts explains.
const load = (path: string): Promise<unknown> => import(/* @vite-ignore */ path);
const { versionChanges } = (await load("./src/pages/bots/bot-version-change.js")) as ChangeModule;

const version = (
  n: number,
  reason: string,
  image: string | null,
  summary: Record<string, unknown>,
): Version => ({
  version: n,
  state: "replaced",
  reason,
  run_id: null,
  image,
  summary,
  error: null,
  created_by: null,
  created_at: "2026-11-29T10:00:00.000Z",
  finished_at: null,
});

const first = version(1, "start", "bot:1", {
  source: { mode: "image", image: "bot:1" },
  env_names: ["FOO", "BAR"],
  secrets: [],
  restart: { policy: "on-failure" },
  limits: { memory_bytes: 64 * 1024 * 1024, cpus: 1 },
});

describe("what a bot's version changed", () => {
  it("names the first version's changes as none", () => {
    expect(versionChanges(first, [first])).toEqual([]);
  });

  it("names env added, removed and changed by name, and a new image", () => {
    const second = version(2, "update", "bot:2", {
      from_version: 1,
      source: { mode: "image", image: "bot:2" },
      env_names: ["FOO", "NEW"],
      env_changed: ["FOO"],
      secrets: [],
      restart: { policy: "on-failure" },
      limits: { memory_bytes: 64 * 1024 * 1024, cpus: 1 },
    });
    expect(versionChanges(second, [second, first])).toEqual([
      "image bot:1 → bot:2",
      "env added: NEW",
      "env removed: BAR",
      "env changed: FOO",
    ]);
  });

  it("tells two builds tagged alike apart by their code's digest, against the version named as their base", () => {
    const built = (n: number, digest: string, from?: number) =>
      version(n, "update", "runyard-bot-x:latest", {
        ...(from ? { from_version: from } : {}),
        source: { mode: "custom", archive: true, code_digest: `sha256:${digest}` },
        env_names: [],
        secrets: [],
      });
    const one = built(1, "aaaaaaaaaaaa");
    const failed = built(2, "bbbbbbbbbbbb", 1);
    const three = built(3, "cccccccccccc", 1);
    expect(versionChanges(three, [three, failed, one])).toEqual(["code aaaaaaaaaaaa → cccccccccccc"]);
  });
});
