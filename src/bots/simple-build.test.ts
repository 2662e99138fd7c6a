import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { RunyardError } from "../core/errors.js";
import {
  botBaseImagesFromEnv,
  defaultBotBaseImages,
  maxSimpleFileBytes,
  maxSimpleFiles,
  simpleBuildContext,
} from "./simple-build.js";

const baseImages = { python: "python:3.12-slim", node: "node:20-slim" };
const echoBot = 'import os\nprint(os.environ["GREETING"])\n';
const dirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "runyard-simple-"));
  dirs.push(dir);
  return dir;
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function refusal(fn: () => unknown): RunyardError {
  try {
    fn();
  } catch (error) {
    if (error instanceof RunyardError) return error;
    throw error;
  }
  throw new Error("expected a RunyardError");
}

describe("simpleBuildContext", () => {
  it("writes a python bot's files under app/ and a Dockerfile that runs it unbuffered as nobody", () => {
    const dir = tempDir();
    const context = simpleBuildContext({ files: { "bot.py": echoBot }, requirements: [], baseImages }, dir);
    expect(context).toMatchObject({ language: "python", entrypoint: "bot.py" });
    expect(context.dockerfile).toBe(
      'FROM python:3.12-slim\nWORKDIR /app\nCOPY app/ ./\nUSER 65534:65534\nCMD ["python3","-u","bot.py"]\n',
    );
    expect(readFileSync(join(dir, "Dockerfile"), "utf8")).toBe(context.dockerfile);
    expect(readFileSync(join(dir, "app", "bot.py"), "utf8")).toBe(echoBot);
    expect(existsSync(join(dir, "requirements.txt"))).toBe(false);
  });

  it("installs python requirements from a written requirements.txt before copying the code", () => {
    const dir = tempDir();
    const { dockerfile } = simpleBuildContext(
      { files: { "bot.py": echoBot }, requirements: ["aiogram>=3.0", "httpx"], baseImages },
      dir,
    );
    expect(readFileSync(join(dir, "requirements.txt"), "utf8")).toBe("aiogram>=3.0\nhttpx\n");
    const lines = dockerfile.split("\n");
    const install = lines.indexOf("RUN pip install --no-cache-dir -r requirements.txt");
    expect(lines[install - 1]).toBe("COPY requirements.txt ./");
    expect(install).toBeLessThan(lines.indexOf("COPY app/ ./"));
  });

  it("detects node from .js, .mjs and .cjs and installs npm specs without a shell", () => {
    for (const name of ["index.js", "bot.mjs", "bot.cjs"]) {
      const context = simpleBuildContext(
        { files: { [name]: "console.log(1)\n" }, requirements: ["grammy@1"], baseImages },
        tempDir(),
      );
      expect(context.language).toBe("node");
      expect(context.dockerfile).toContain("FROM node:20-slim\n");
      expect(context.dockerfile).toContain('RUN ["npm","install","--omit=dev","grammy@1"]\n');
      expect(context.dockerfile).toContain(`CMD ["node","${name}"]\n`);
    }
    const bare = simpleBuildContext({ files: { "index.js": "" }, requirements: [], baseImages }, tempDir());
    expect(bare.dockerfile).not.toContain("npm");
  });

  it("picks main.py, bot.py or index.js among several files, keeps folders, and honours --entrypoint", () => {
    const files = { "bot.py": echoBot, "handlers/start.py": "x = 1\n", "utils.py": "" };
    const dir = tempDir();
    expect(simpleBuildContext({ files, requirements: [], baseImages }, dir).entrypoint).toBe("bot.py");
    expect(readFileSync(join(dir, "app", "handlers", "start.py"), "utf8")).toBe("x = 1\n");
    const chosen = simpleBuildContext(
      { files, entrypoint: "utils.py", requirements: [], baseImages },
      tempDir(),
    );
    expect(chosen.dockerfile).toContain('CMD ["python3","-u","utils.py"]');
  });

  it("refuses an entrypoint of unknown language with a hint listing the files", () => {
    const error = refusal(() =>
      simpleBuildContext(
        { files: { "bot.rb": "puts 1", README: "" }, entrypoint: "bot.rb", requirements: [], baseImages },
        tempDir(),
      ),
    );
    expect(error.code).toBe("INVALID_INPUT");
    expect(error.message).toContain('"bot.rb"');
    expect(error.hint).toContain("README, bot.rb");
    expect(error.hint).toContain(".py");
  });

  it("asks for an entrypoint when none can be chosen, listing the files", () => {
    const error = refusal(() =>
      simpleBuildContext({ files: { "a.py": "", "b.py": "" }, requirements: [], baseImages }, tempDir()),
    );
    expect(error.code).toBe("INVALID_INPUT");
    expect(error.hint).toContain("a.py, b.py");
    const missing = refusal(() =>
      simpleBuildContext(
        { files: { "a.py": "" }, entrypoint: "b.py", requirements: [], baseImages },
        tempDir(),
      ),
    );
    expect(missing.hint).toContain("a.py");
  });

  it("refuses bad file names before writing anything", () => {
    for (const name of [
      "../x.py",
      "/etc/x.py",
      "a/../../x.py",
      "a\0.py",
      "a//b.py",
      "./a.py",
      "-c",
      "a\\b.py",
      "x\n.py",
    ]) {
      const dir = tempDir();
      const error = refusal(() =>
        simpleBuildContext({ files: { "bot.py": echoBot, [name]: "" }, requirements: [], baseImages }, dir),
      );
      expect(error.code, name).toBe("INVALID_INPUT");
      expect(error.message).toContain("is refused");
      expect(readdirSync(dir), name).toEqual([]);
    }
  });

  it("caps the number of files and each file's size", () => {
    const many = Object.fromEntries(Array.from({ length: maxSimpleFiles + 1 }, (_, i) => [`f${i}.py`, ""]));
    expect(
      refusal(() =>
        simpleBuildContext({ files: many, entrypoint: "f0.py", requirements: [], baseImages }, tempDir()),
      ).message,
    ).toContain(`at most ${maxSimpleFiles} files`);
    const big = { "bot.py": "x".repeat(maxSimpleFileBytes + 1) };
    expect(
      refusal(() => simpleBuildContext({ files: big, requirements: [], baseImages }, tempDir())).message,
    ).toContain("more than");
    expect(
      refusal(() => simpleBuildContext({ files: {}, requirements: [], baseImages }, tempDir())).code,
    ).toBe("INVALID_INPUT");
  });

  it("refuses requirements holding line breaks or options, and base images that are not references", () => {
    for (const spec of ["aiogram\nRUN id", "--index-url=http://x", "-r /etc/passwd", ""]) {
      expect(
        refusal(() =>
          simpleBuildContext({ files: { "bot.py": "" }, requirements: [spec], baseImages }, tempDir()),
        ).code,
      ).toBe("INVALID_INPUT");
    }
    const error = refusal(() =>
      simpleBuildContext(
        { files: { "bot.py": "" }, requirements: [], baseImages: { ...baseImages, python: "py\nRUN id" } },
        tempDir(),
      ),
    );
    expect(error.message).toContain("base image");
  });

  it("never writes ARG or ENV: the function is given no secrets, and the Dockerfile holds none", () => {
    const secret = "123:ABC-secret-token";
    // Secrets are the container's env; the build only sees files, requirements and base images.
    const { dockerfile } = simpleBuildContext(
      {
        files: { "bot.py": 'import os\ntoken = os.environ["BOT_TOKEN"]\n' },
        requirements: ["aiogram>=3.0"],
        baseImages,
      },
      tempDir(),
    );
    expect(dockerfile).not.toMatch(/^(ARG|ENV)\b/m);
    expect(dockerfile).not.toContain(secret);
  });
});

describe("botBaseImagesFromEnv", () => {
  it("defaults to python:3.12-slim and node:20-slim", () => {
    expect(botBaseImagesFromEnv({})).toEqual(defaultBotBaseImages);
    expect(defaultBotBaseImages).toEqual({ python: "python:3.12-slim", node: "node:20-slim" });
  });

  it("reads runyard's keys, with the avtomatika-bot's BASE_IMAGE as the python alias that runyard's key overrides", () => {
    expect(botBaseImagesFromEnv({ BASE_IMAGE: "python:3.11-slim" }).python).toBe("python:3.11-slim");
    expect(
      botBaseImagesFromEnv({
        BASE_IMAGE: "python:3.11-slim",
        RUNYARD_BOT_BASE_IMAGE_PYTHON: "py:local",
        RUNYARD_BOT_BASE_IMAGE_NODE: "node:local",
      }),
    ).toEqual({ python: "py:local", node: "node:local" });
    expect(botBaseImagesFromEnv({ RUNYARD_BOT_BASE_IMAGE_PYTHON: " ", BASE_IMAGE: "" })).toEqual(
      defaultBotBaseImages,
    );
  });
});
