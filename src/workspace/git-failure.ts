/**
 * What a failed network git command (fetch, ls-remote, push) means, read from its stderr
 * (git runs with LC_ALL=C). Auth and rejection are checked first: "Could not read from remote
 * repository" follows an SSH key refusal as well as a dropped connection.
 */
export type GitFailureKind = "auth" | "rejected" | "transient" | "other";

const authPatterns = [
  /Authentication failed/i,
  /could not read (Username|Password)/i,
  /terminal prompts disabled/i,
  /returned error: 40[13]\b/i,
  /Permission denied \(publickey/i,
  /HTTP Basic: Access denied/i,
  /Invalid username or password/i,
];

const rejectedPatterns = [
  /\[rejected\]/,
  /\[remote rejected\]/,
  /non-fast-forward/i,
  /failed to push some refs/i,
];

const transientPatterns = [
  /Could not resolve host/i,
  /Temporary failure in name resolution/i,
  /Connection refused/i,
  /Connection reset/i,
  /Connection timed out/i,
  /timed out/i,
  /Operation too slow/i,
  /returned error: 5\d\d\b/i,
  /\bHTTP 5\d\d\b/,
  /remote end hung up/i,
  /early EOF/i,
  /RPC failed/i,
  /Failed to connect/i,
  /unexpected disconnect/i,
  /Could not read from remote repository/i,
  /SSL_ERROR|gnutls_handshake|TLS connection/i,
  /Empty reply from server/i,
];

export function classifyGitFailure(stderr: string): GitFailureKind {
  if (authPatterns.some((pattern) => pattern.test(stderr))) return "auth";
  if (rejectedPatterns.some((pattern) => pattern.test(stderr))) return "rejected";
  if (transientPatterns.some((pattern) => pattern.test(stderr))) return "transient";
  return "other";
}

/**
 * A repo URL fit for a log line: userinfo (`https://user:token@host`) taken out. The contract
 * says URLs never hold credentials; this is for the one that does anyway.
 */
export function displayUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1");
}

/**
 * Git output fit for a message: the token replaced wherever it shows (git could echo a URL a
 * server sent back, or a helper could print it), URL userinfo taken out, and trimmed to its
 * last lines, which say why it failed.
 */
export function maskGitOutput(text: string, secrets: readonly string[]): string {
  let masked = text;
  for (const secret of secrets) if (secret.length > 0) masked = masked.split(secret).join("***");
  masked = masked.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, "$1");
  const lines = masked.trim().split("\n");
  return lines.slice(-8).join("\n");
}
