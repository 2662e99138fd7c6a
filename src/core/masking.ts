/**
 * Secret masking. Every event and log passes through a masker before it leaves the process
 * that produced it. Streams use `StreamMasker`, which holds back the end of a chunk only while
 * it could be the start of a secret, so a secret split across two chunks is still masked and
 * ordinary output is not delayed.
 */

export const MASK = "***";

/** Values shorter than this are not masked: masking "1" or "yes" would wreck every log. */
export const MIN_SECRET_LENGTH = 4;

const secretNamePattern = /(^|_)(TOKEN|KEY|SECRET|PASSWORD|PASSWD)$/i;

export function isSecretName(name: string): boolean {
  return secretNamePattern.test(name);
}

/** The values of environment variables whose names say they hold secrets. */
export function secretsFromEnv(env: Record<string, string | undefined>): string[] {
  const values: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && isSecretName(name)) values.push(value);
  }
  return values;
}

export class SecretMasker {
  private secrets: string[] = [];

  constructor(secrets: Iterable<string> = []) {
    this.add(secrets);
  }

  add(secrets: Iterable<string>): void {
    const set = new Set(this.secrets);
    for (const secret of secrets) {
      if (secret.length >= MIN_SECRET_LENGTH) set.add(secret);
      // A multi-line secret is also masked line by line, since output is often split on lines.
      for (const line of secret.split(/\r?\n/)) if (line.length >= MIN_SECRET_LENGTH) set.add(line);
    }
    // Longest first, so a secret that contains another is replaced whole.
    this.secrets = [...set].sort((a, b) => b.length - a.length);
  }

  /** The values being masked, to hand on to another process. */
  values(): string[] {
    return [...this.secrets];
  }

  get size(): number {
    return this.secrets.length;
  }

  get longest(): number {
    return this.secrets[0]?.length ?? 0;
  }

  mask(text: string): string {
    if (this.secrets.length === 0) return text;
    let out = text;
    for (const secret of this.secrets) {
      if (out.includes(secret)) out = out.split(secret).join(MASK);
    }
    return out;
  }

  /** Masks every string inside a JSON-like value. */
  maskDeep<T>(value: T): T {
    if (this.secrets.length === 0) return value;
    return deepMap(value, (s) => this.mask(s)) as T;
  }

  /** Length of the longest suffix of `text` that is a proper prefix of some secret. */
  pendingPrefixLength(text: string): number {
    let best = 0;
    for (const secret of this.secrets) {
      const max = Math.min(secret.length - 1, text.length);
      for (let len = max; len > best; len--) {
        if (text.endsWith(secret.slice(0, len))) {
          best = len;
          break;
        }
      }
    }
    return best;
  }

  stream(): StreamMasker {
    return new StreamMasker(this);
  }
}

function deepMap(value: unknown, fn: (s: string) => string): unknown {
  if (typeof value === "string") return fn(value);
  if (Array.isArray(value)) return value.map((item) => deepMap(item, fn));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = deepMap(item, fn);
    return out;
  }
  return value;
}

/** Masks a stream of chunks; keep one per stream (stdout and stderr apart). */
export class StreamMasker {
  private held = "";

  constructor(private readonly masker: SecretMasker) {}

  push(chunk: string): string {
    const text = this.held + chunk;
    if (this.masker.size === 0) {
      this.held = "";
      return text;
    }
    // Mask whole secrets first, then hold back a tail that may begin one.
    const masked = this.masker.mask(text);
    const keep = this.masker.pendingPrefixLength(masked);
    this.held = masked.slice(masked.length - keep);
    return masked.slice(0, masked.length - keep);
  }

  flush(): string {
    const rest = this.masker.mask(this.held);
    this.held = "";
    return rest;
  }
}
