import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { RunyardError } from "../core/errors.js";
import { defaultContainerUser } from "../exec/docker/container-spec.js";

/** The avtomatika-bot's simple mode: files as text, at most this many. */
export const maxSimpleFiles = 100;
/** The largest file of a simple bot, in UTF-8 bytes. */
export const maxSimpleFileBytes = 1024 * 1024;

/** The config keys naming simple mode's base images; the avtomatika-bot's `BASE_IMAGE` is the python one. */
export const botBaseImageKeys = {
  python: "RUNYARD_BOT_BASE_IMAGE_PYTHON",
  node: "RUNYARD_BOT_BASE_IMAGE_NODE",
  pythonAlias: "BASE_IMAGE",
} as const;

export interface BotBaseImages {
  python: string;
  node: string;
}

export const defaultBotBaseImages: BotBaseImages = { python: "python:3.12-slim", node: "node:20-slim" };

/** The base images an environment names; runyard's own key wins over the avtomatika-bot alias. */
export function botBaseImagesFromEnv(env: Record<string, string | undefined>): BotBaseImages {
  const pick = (...keys: string[]) => keys.map((key) => env[key]?.trim()).find((value) => value);
  return {
    python: pick(botBaseImageKeys.python, botBaseImageKeys.pythonAlias) ?? defaultBotBaseImages.python,
    node: pick(botBaseImageKeys.node) ?? defaultBotBaseImages.node,
  };
}

export type SimpleBotLanguage = "python" | "node";

/**
 * A simple-mode bot as sent. Secrets are not part of it on purpose: they reach only the
 * container's env at run time, so the build context, the Dockerfile and the image's history
 * cannot hold them.
 */
export interface SimpleBotSource {
  /** File name (relative, `/` for folders) to its text. */
  files: Record<string, string>;
  /** Defaults to the only file, else `main.py`, `bot.py` or `index.js`, whichever is present. */
  entrypoint?: string;
  /** pip requirement lines (python) or npm package specs (node), the avtomatika-bot CLI's `-r`. */
  requirements: string[];
  baseImages: BotBaseImages;
}

export interface SimpleBuildContext {
  language: SimpleBotLanguage;
  entrypoint: string;
  dockerfile: string;
}

const entrypointDefaults = ["main.py", "bot.py", "index.js"];

const languageOfExtension: Record<string, SimpleBotLanguage> = {
  ".py": "python",
  ".js": "node",
  ".mjs": "node",
  ".cjs": "node",
};

/** The folder of the context the user's files go to; the Dockerfile beside it is runyard's. */
const appFolder = "app";

function invalid(message: string, hint?: string): never {
  throw new RunyardError("INVALID_INPUT", message, hint === undefined ? {} : { hint });
}

/**
 * Why a file name is refused, or null. Names are relative paths that stay inside the app folder;
 * a leading `-` is refused too, since the entrypoint becomes an argument of python3 or node.
 */
export function simpleFileNameProblem(name: string): string | null {
  if (name === "") return "it is empty";
  if (name.includes("\0")) return "it holds a NUL byte";
  if (/[\u0001-\u001f\u007f\\]/.test(name)) return "it holds a control character or a backslash";
  if (name.startsWith("/")) return "it is absolute";
  const segments = name.split("/");
  if (segments.includes("..")) return "it holds a `..` segment";
  if (segments.some((s) => s === "" || s === ".")) return "it holds an empty or `.` segment";
  if (segments.some((s) => s.startsWith("-"))) return "a segment starts with `-`";
  return null;
}

function checkFiles(files: Record<string, string>): string[] {
  const names = Object.keys(files).sort();
  if (names.length === 0) invalid("a simple bot needs at least one file");
  if (names.length > maxSimpleFiles) {
    invalid(`a simple bot may have at most ${maxSimpleFiles} files, got ${names.length}`);
  }
  for (const name of names) {
    const problem = simpleFileNameProblem(name);
    if (problem) invalid(`file name ${JSON.stringify(name)} is refused: ${problem}`);
    const bytes = Buffer.byteLength(files[name] ?? "", "utf8");
    if (bytes > maxSimpleFileBytes) {
      invalid(`file ${JSON.stringify(name)} has ${bytes} bytes, more than ${maxSimpleFileBytes}`);
    }
  }
  const set = new Set(names);
  for (const name of names) {
    // A name that is also the folder of another cannot be written (nor meant).
    const parts = name.split("/");
    for (let i = 1; i < parts.length; i += 1) {
      const folder = parts.slice(0, i).join("/");
      if (set.has(folder))
        invalid(`file ${JSON.stringify(folder)} is also the folder of ${JSON.stringify(name)}`);
    }
  }
  return names;
}

function chooseEntrypoint(names: string[], given: string | undefined): string {
  const listed = `the files are: ${names.join(", ")}`;
  if (given !== undefined) {
    if (!names.includes(given)) {
      invalid(
        `entrypoint ${JSON.stringify(given)} is not one of the files`,
        `Name one of the files; ${listed}.`,
      );
    }
    return given;
  }
  if (names.length === 1) return names[0] as string;
  const found = entrypointDefaults.find((name) => names.includes(name));
  if (found) return found;
  return invalid(
    "cannot tell which file is the entrypoint",
    `Give --entrypoint, or name the file main.py, bot.py or index.js; ${listed}.`,
  );
}

function languageOf(entrypoint: string, names: string[]): SimpleBotLanguage {
  const dot = entrypoint.lastIndexOf(".");
  const language = dot > entrypoint.lastIndexOf("/") ? languageOfExtension[entrypoint.slice(dot)] : undefined;
  if (language) return language;
  return invalid(
    `cannot tell the language of entrypoint ${JSON.stringify(entrypoint)}`,
    `Simple mode runs Python (.py) or Node (.js, .mjs, .cjs); pick an entrypoint with one of those extensions (the files are: ${names.join(", ")}), or deploy with --custom and your own Dockerfile.`,
  );
}

/** Requirements go into a file or a JSON argument list, never through a shell: no line breaks, no options. */
function checkRequirements(requirements: string[]): void {
  for (const spec of requirements) {
    if (spec.trim() === "" || /[\u0000-\u001f\u007f]/.test(spec) || spec.trim().startsWith("-")) {
      invalid(
        `requirement ${JSON.stringify(spec)} is refused`,
        "Give one package spec per -r (e.g. aiogram>=3.0), without options or line breaks.",
      );
    }
  }
}

function checkImage(image: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$/.test(image)) {
    invalid(`base image ${JSON.stringify(image)} is not an image reference`);
  }
}

/**
 * Checks a simple-mode bot as `simpleBuildContext` would, writing nothing: the server refuses a
 * bad one at submit, before any runner builds. Answers the entrypoint and its language.
 */
export function checkSimpleSource(source: Omit<SimpleBotSource, "baseImages">): {
  entrypoint: string;
  language: SimpleBotLanguage;
} {
  const names = checkFiles(source.files);
  const entrypoint = chooseEntrypoint(names, source.entrypoint);
  const language = languageOf(entrypoint, names);
  checkRequirements(source.requirements.map((spec) => spec.trim()));
  return { entrypoint, language };
}

/**
 * Writes a simple-mode bot's build context into `dir` (the avtomatika-bot's simple mode: files as
 * text, requirements, an entrypoint whose extension says Python or Node): the user's files under
 * `app/`, the requirements (Python) and a generated Dockerfile beside them. Every name is checked
 * before anything is written. The image's process runs as nobody, and no `ARG` or `ENV` is written:
 * secrets are given to the container at run time only.
 */
export function simpleBuildContext(source: SimpleBotSource, dir: string): SimpleBuildContext {
  const names = checkFiles(source.files);
  const entrypoint = chooseEntrypoint(names, source.entrypoint);
  const language = languageOf(entrypoint, names);
  const requirements = source.requirements.map((spec) => spec.trim());
  checkRequirements(requirements);
  const base = source.baseImages[language];
  checkImage(base);

  const lines = [`FROM ${base}`, "WORKDIR /app"];
  if (requirements.length > 0) {
    if (language === "python") {
      lines.push("COPY requirements.txt ./", "RUN pip install --no-cache-dir -r requirements.txt");
    } else {
      lines.push(`RUN ${JSON.stringify(["npm", "install", "--omit=dev", ...requirements])}`);
    }
  }
  lines.push(`COPY ${appFolder}/ ./`, `USER ${defaultContainerUser}`);
  const cmd = language === "python" ? ["python3", "-u", entrypoint] : ["node", entrypoint];
  lines.push(`CMD ${JSON.stringify(cmd)}`);
  const dockerfile = `${lines.join("\n")}\n`;

  for (const name of names) {
    const path = join(dir, appFolder, ...name.split("/"));
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, source.files[name] ?? "", { mode: 0o644 });
  }
  if (language === "python" && requirements.length > 0) {
    writeFileSync(join(dir, "requirements.txt"), `${requirements.join("\n")}\n`, { mode: 0o644 });
  }
  writeFileSync(join(dir, "Dockerfile"), dockerfile, { mode: 0o644 });
  return { language, entrypoint, dockerfile };
}
