/**
 * Secret masking, before any event or log leaves its process. `StreamMasker` holds back output only
 * while it could still be part of a secret, so a secret split across chunks is masked and ordinary
 * output is not delayed. Cost is linear in the output whatever the secrets' lengths: one Aho-Corasick
 * automaton (`SecretAutomaton`), and windows that cannot hold a secret are skipped.
 * Overlapping occurrences get one mask over their union, so no part shows; touching ones one each.
 */
import { SecretAutomaton } from "./secret-automaton.js";

export const MASK = "***";

/** Values shorter than this are not masked: masking "1" or "yes" would wreck every log. */
export const MIN_SECRET_LENGTH = 4;

const secretNamePattern = /(^|_)(TOKEN|KEY|SECRET|PASSWORD|PASSWD)$/i;

/** Whether a variable's name says it holds a secret (`*_TOKEN`, `*_KEY`, `*_SECRET`, `*_PASSWORD`). */
export function isSecretName(name: string): boolean {
  return secretNamePattern.test(name);
}

/** The values of environment variables whose names say they hold secrets (or are in `names`). */
export function secretsFromEnv(
  env: Record<string, string | undefined>,
  names: ReadonlySet<string> | readonly string[] = [],
): string[] {
  const listed = names instanceof Set ? names : new Set(names);
  const values: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && (isSecretName(name) || listed.has(name))) values.push(value);
  }
  return values;
}

export class SecretMasker {
  private readonly secrets = new Set<string>();
  private compiled: SecretAutomaton | undefined;
  /** Grows with every new secret; streams compare it to know when to rescan what they hold. */
  private generation = 0;

  constructor(secrets: Iterable<string> = []) {
    this.add(secrets);
  }

  add(secrets: Iterable<string>): void {
    const before = this.secrets.size;
    for (const secret of secrets) {
      if (secret.length >= MIN_SECRET_LENGTH) this.secrets.add(secret);
      // A multi-line secret is also masked line by line, since output is often split on lines.
      if (secret.includes("\n")) {
        for (const line of secret.split(/\r?\n/))
          if (line.length >= MIN_SECRET_LENGTH) this.secrets.add(line);
      }
    }
    if (this.secrets.size !== before) {
      this.compiled = undefined;
      this.generation += 1;
    }
  }

  /** The values being masked, to hand on to another process. */
  values(): string[] {
    return [...this.secrets];
  }

  get size(): number {
    return this.secrets.size;
  }

  /** @internal The automaton over the current secrets, built on first use after a change. */
  automaton(): SecretAutomaton {
    this.compiled ??= sharedAutomaton(this.secrets);
    return this.compiled;
  }

  /** @internal */
  get version(): number {
    return this.generation;
  }

  mask(text: string): string {
    if (this.secrets.size === 0 || text.length < MIN_SECRET_LENGTH) return text;
    const stream = this.stream();
    return stream.push(text) + stream.flush();
  }

  /** Masks every string inside a JSON-like value. */
  maskDeep<T>(value: T): T {
    if (this.secrets.size === 0) return value;
    return deepMap(value, (s) => this.mask(s)) as T;
  }

  stream(): StreamMasker {
    return new StreamMasker(this);
  }
}

/**
 * Automata built lately, by their secrets: a runner's every step masks the same values (its own
 * token, the host's secrets) and most add none, and building one costs more than a short step's
 * masking (its root table alone is 65,536 entries). An automaton never changes once built.
 */
const recentAutomata = new Map<string, SecretAutomaton>();
const recentAutomataKept = 8;

function sharedAutomaton(secrets: ReadonlySet<string>): SecretAutomaton {
  // JSON, not a join: the key of {"a,b"} must differ from that of {"a", "b"}, whatever a secret holds.
  const key = JSON.stringify([...secrets]);
  let automaton = recentAutomata.get(key);
  if (automaton) recentAutomata.delete(key);
  else {
    automaton = new SecretAutomaton(secrets);
    if (recentAutomata.size >= recentAutomataKept)
      recentAutomata.delete(recentAutomata.keys().next().value as string);
  }
  recentAutomata.set(key, automaton);
  return automaton;
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

/** An occurrence (or merged overlapping occurrences) of secrets, as absolute positions. */
interface Span {
  start: number;
  end: number;
}

/**
 * Masks a stream of chunks, one per stream; positions count characters since it began. `held` is a
 * list of pieces, so holding back a long prefix costs nothing per chunk.
 */
export class StreamMasker {
  private version = -1;
  private automaton: SecretAutomaton | undefined;
  private state = 0;
  /** Characters consumed so far. */
  private pos = 0;
  /** Everything before this is out (as text or as a mask). */
  private emitted = 0;
  /** End of the last span whose mask is out; text before it is dropped, spans overlapping it extend it. */
  private coveredUntil = 0;
  /** Spans found but not yet out, in order, none overlapping another. */
  private pending: Span[] = [];
  private held: string[] = [];
  /** `held` before this index is out; the array is compacted now and then. */
  private heldHead = 0;
  /** Offset into `held[heldHead]` where `emitted` is. */
  private heldOffset = 0;

  constructor(private readonly masker: SecretMasker) {}

  push(chunk: string): string {
    if (this.masker.size === 0 && this.pos === this.emitted) {
      this.pos += chunk.length;
      this.emitted = this.pos;
      return chunk;
    }
    if (this.version !== this.masker.version) this.rescanHeld();
    if (chunk.length > 0) this.held.push(chunk);
    this.scan(chunk);
    return this.release(this.pos - this.depth());
  }

  flush(): string {
    if (this.version !== this.masker.version) this.rescanHeld();
    const out = this.release(this.pos);
    this.state = 0;
    return out;
  }

  private depth(): number {
    return this.automaton ? this.automaton.depth(this.state) : 0;
  }

  /** New secrets: rerun the automaton over what is held, so a held-back tail is checked against them too. */
  private rescanHeld(): void {
    this.version = this.masker.version;
    this.automaton = this.masker.size > 0 ? this.masker.automaton() : undefined;
    this.state = 0;
    this.pending = [];
    const end = this.pos;
    this.pos = this.emitted;
    const text = this.held.slice(this.heldHead).join("").slice(this.heldOffset);
    this.scan(text);
    this.pos = end;
  }

  /** Runs the automaton over `text`, which follows what was consumed so far. */
  private scan(text: string): void {
    const automaton = this.automaton;
    if (!automaton) {
      this.pos += text.length;
      return;
    }
    let state = this.state;
    const base = this.pos;
    const length = text.length;
    const window = automaton.window;
    let i = 0;
    while (i < length) {
      if (state === 0 && i + window <= length) {
        const skip = automaton.skip(text, i + window - 4);
        if (skip > 0) {
          i += skip;
          continue;
        }
      }
      state = automaton.next(state, text.charCodeAt(i));
      i += 1;
      const found = automaton.matchLength(state);
      if (found > 0) this.found(base + i - found, base + i);
    }
    this.state = state;
    this.pos = base + length;
  }

  private found(start: number, end: number): void {
    if (start < this.coveredUntil) {
      // Overlaps a span whose mask is out: it grows, and swallows what was pending after it.
      this.coveredUntil = Math.max(this.coveredUntil, end);
      this.pending = [];
      return;
    }
    const pending = this.pending;
    while (pending.length > 0 && pending[pending.length - 1]!.start >= start) pending.pop();
    const last = pending[pending.length - 1];
    if (last && last.end > start) last.end = end;
    else pending.push({ start, end });
  }

  /** Sends out everything before `safe` (no secret can start before it any more). */
  private release(safe: number): string {
    let out = "";
    let spanIndex = 0;
    for (;;) {
      if (this.coveredUntil > this.emitted) this.drop(Math.min(this.coveredUntil, this.pos) - this.emitted);
      const span = this.pending[spanIndex];
      if (span && span.start < safe) {
        out += this.take(span.start - this.emitted) + MASK;
        this.coveredUntil = span.end;
        spanIndex += 1;
        continue;
      }
      const upTo = Math.min(safe, span ? span.start : safe);
      if (upTo > this.emitted) out += this.take(upTo - this.emitted);
      break;
    }
    if (spanIndex > 0) this.pending = this.pending.slice(spanIndex);
    return out;
  }

  /** Removes `count` held characters and returns them. */
  private take(count: number): string {
    if (count <= 0) return "";
    const parts: string[] = [];
    let left = count;
    while (left > 0) {
      const piece = this.held[this.heldHead]!;
      const available = piece.length - this.heldOffset;
      if (available <= left) {
        parts.push(this.heldOffset === 0 ? piece : piece.slice(this.heldOffset));
        this.heldHead += 1;
        this.heldOffset = 0;
        left -= available;
      } else {
        parts.push(piece.slice(this.heldOffset, this.heldOffset + left));
        this.heldOffset += left;
        left = 0;
      }
    }
    this.emitted += count;
    if (this.heldHead > 64 && this.heldHead * 2 > this.held.length) {
      this.held = this.held.slice(this.heldHead);
      this.heldHead = 0;
    }
    return parts.length === 1 ? parts[0]! : parts.join("");
  }

  private drop(count: number): void {
    if (count > 0) this.take(count);
  }
}

/**
 * Exports whose name holds a secret (`L_${DEPLOY_KEY}=1`) are dropped, with a warning naming them
 * masked: names are shown unmasked everywhere, and a masked one no step could name.
 */
export function withoutSecretNames(
  exports: Record<string, string>,
  masker: SecretMasker,
): { kept: Record<string, string>; refused: string[] } {
  const kept: Record<string, string> = {};
  const refused: string[] = [];
  for (const [name, value] of Object.entries(exports)) {
    const masked = masker.mask(name);
    if (masked === name) kept[name] = value;
    else
      refused.push(
        `export ${masked} was refused: its name holds a secret's value; export the value under a fixed name instead`,
      );
  }
  return { kept, refused };
}
