import { RunyardError } from "../../core/errors.js";

const dockerHub = "https://index.docker.io/v1/";

/**
 * The registry of an image reference, as Docker names it in an auth config: the first part when
 * it has a dot or a colon or is localhost (Docker's own rule), else Docker Hub.
 */
export function registryOf(ref: string): string {
  const first = ref.split("/")[0] ?? "";
  const explicit = ref.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  if (!explicit || first === "docker.io" || first === "index.docker.io") return dockerHub;
  return first;
}

/**
 * Docker says why a pull failed only in prose (HTTP 404 for a missing tag, 500 with the
 * registry's words for the rest), so the words decide. The phrasings were seen with Docker 20.10
 * and distribution 2.8 (tests in test/bots/registry.test.ts). Docker Hub answers a missing
 * repository with "denied" (it will not say whether a private one exists): that reads as
 * BOT_REGISTRY_AUTH. Anything unrecognised is taken as the registry's fault (unreachable), and
 * Docker's words stay in the message. `mask` hides the password in those words.
 */
export function pullError(ref: string, error: unknown, mask: (text: string) => string): RunyardError {
  const status = (error as { statusCode?: number } | null)?.statusCode;
  // dockerode's message is "(HTTP code 500) server error - <Docker's words> "; keep Docker's words.
  const message = error instanceof Error ? error.message : String(error);
  const raw = mask(message.replace(/^\(HTTP code \d+\) [^-]*- /, "").trim());
  const text = raw.toLowerCase();
  if (
    /unauthorized|authentication required|denied|no basic auth credentials|incorrect username or password/.test(
      text,
    )
  ) {
    return new RunyardError(
      "BOT_REGISTRY_AUTH",
      `pulling ${ref}: the registry refused the credentials (${raw})`,
    );
  }
  if (
    /connection refused|no such host|i\/o timeout|network is unreachable|dial tcp|tls handshake timeout|server gave http response/.test(
      text,
    )
  ) {
    return new RunyardError(
      "BOT_REGISTRY_UNREACHABLE",
      `pulling ${ref}: the registry cannot be reached (${raw})`,
    );
  }
  if (status === 404 || /manifest unknown|not found|does not exist/.test(text)) {
    return new RunyardError("BOT_IMAGE_NOT_FOUND", `pulling ${ref}: no such image or tag (${raw})`);
  }
  return new RunyardError("BOT_REGISTRY_UNREACHABLE", `pulling ${ref} failed (${raw})`);
}
