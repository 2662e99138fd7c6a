/**
 * The images a Dockerfile builds on: each `FROM`, and each `COPY --from=` / `ADD --from=` that
 * names an image rather than one of its own stages. A build takes them from the engine's local
 * images first, so a runner checks them before it builds a user's Dockerfile (another user's bot
 * image must not become the base of this one). Variables are filled from the `ARG` defaults
 * written before them; one that stays unfilled is returned in `unresolved`.
 */
export function dockerfileBases(text: string): { images: string[]; unresolved: string[] } {
  const args = new Map<string, string>();
  const stages = new Set<string>();
  let stageCount = 0;
  const images: string[] = [];
  const unresolved: string[] = [];
  const take = (raw: string) => {
    const ref = expand(raw, args);
    if (ref === undefined) unresolved.push(raw);
    else if (ref.toLowerCase() !== "scratch" && !stages.has(ref.toLowerCase())) images.push(ref);
  };
  for (const line of instructions(text)) {
    const [keyword = "", ...words] = line.split(/\s+/);
    const instruction = keyword.toUpperCase();
    if (instruction === "ARG") {
      for (const word of words) {
        const at = word.indexOf("=");
        if (at > 0) args.set(word.slice(0, at), unquote(word.slice(at + 1)));
      }
    } else if (instruction === "FROM") {
      const [image, as, stage] = words.filter((word) => !word.startsWith("--"));
      if (image !== undefined) take(image);
      if (as?.toUpperCase() === "AS" && stage) stages.add(stage.toLowerCase());
      stages.add(String(stageCount++));
    } else if (instruction === "COPY" || instruction === "ADD") {
      for (const word of words) {
        if (word.toLowerCase().startsWith("--from=")) take(word.slice("--from=".length));
      }
    }
  }
  return { images, unresolved };
}

/** The Dockerfile's instructions, one line each: comments dropped, `\` continuations joined. */
function instructions(text: string): string[] {
  const lines: string[] = [];
  let current = "";
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (current === "" && (line === "" || line.startsWith("#"))) continue;
    if (line.startsWith("#")) continue;
    if (line.endsWith("\\")) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    lines.push((current + line).trim());
    current = "";
  }
  if (current.trim() !== "") lines.push(current.trim());
  return lines;
}

/** `$NAME`, `${NAME}` and `${NAME:-default}` filled from `args`; undefined when one is unknown. */
function expand(raw: string, args: Map<string, string>): string | undefined {
  let unknown = false;
  const value = unquote(raw).replace(
    /\$(?:\{(\w+)(?::-([^}]*))?\}|(\w+))/g,
    (_all, braced: string | undefined, fallback: string | undefined, bare: string | undefined) => {
      const name = braced ?? bare ?? "";
      const given = args.get(name);
      if (given !== undefined && given !== "") return given;
      if (fallback !== undefined) return fallback;
      unknown = true;
      return "";
    },
  );
  return unknown || value.includes("$") ? undefined : value;
}

function unquote(value: string): string {
  return value.replace(/^(["'])(.*)\1$/, "$2");
}
