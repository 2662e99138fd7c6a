/**
 * What is wrong with one entry of `RUNYARD_CORS_ORIGINS` (or the config file's `corsOrigins`),
 * which lists exact origins, e.g. `https://ui.example.com,http://localhost:5173`; undefined: nothing.
 */
export function corsOriginProblem(origin: string): string | undefined {
  if (origin === "*" || origin === "null") {
    return `${origin} is not allowed: list the exact origins (scheme://host[:port]) of the sites that may call the API`;
  }
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return `${JSON.stringify(origin)} is not an origin: write scheme://host[:port], e.g. https://ui.example.com`;
  }
  if (!["http:", "https:"].includes(parsed.protocol) || parsed.origin !== origin) {
    return `${JSON.stringify(origin)} is not an exact origin: write scheme://host[:port] with no path or trailing slash, e.g. ${parsed.origin}`;
  }
  return undefined;
}
