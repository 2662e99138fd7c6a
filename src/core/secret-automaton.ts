/**
 * An Aho-Corasick automaton over a set of secrets, for `StreamMasker`. Each state is a prefix
 * of some secret; feeding characters one at a time moves through states in amortised constant
 * time, so finding every occurrence costs time linear in the text, however long the secrets.
 *
 * Most states of long secrets have one child, so a state keeps one edge inline and only
 * branching states get a map; the root, visited most, has a dense table.
 *
 * `skip` lets the scan jump over output that cannot hold a secret while none is under way
 * (Horspool's idea for many patterns, as in Wu-Manber): every secret is at least `window`
 * characters long, so a secret starting in `[i, i + window - 4]` would cover the 4 characters
 * ending that window; if those 4 characters appear in no secret's first `window` characters
 * (at a suitable offset), no secret starts there.
 */

const BLOCK = 4;
const MAX_WINDOW = 64;
const TABLE_BITS = 17;
const TABLE_MASK = (1 << TABLE_BITS) - 1;

function blockHash(c0: number, c1: number, c2: number, c3: number): number {
  let h = Math.imul(c0, 0x9e3779b1) ^ c1;
  h = Math.imul(h, 0x85ebca6b) ^ c2;
  h = Math.imul(h, 0xc2b2ae35) ^ c3;
  return (h ^ (h >>> 15)) & TABLE_MASK;
}

export class SecretAutomaton {
  /** Length of the window `skip` looks at; at most the shortest secret's length. */
  readonly window: number;
  private readonly root = new Int32Array(65536);
  private readonly edgeChar: Int32Array;
  private readonly edgeNext: Int32Array;
  private readonly branches = new Map<number, Map<number, number>>();
  private readonly fail: Int32Array;
  private readonly depths: Int32Array;
  private readonly matches: Int32Array;
  /** For each 4-character block hash: 1 + the largest offset it has in a secret's first `window` characters. */
  private readonly blocks = new Uint8Array(1 << TABLE_BITS);

  constructor(secrets: Iterable<string>) {
    const list = [...secrets];
    let total = 1;
    let shortest = Number.POSITIVE_INFINITY;
    for (const secret of list) {
      total += secret.length;
      shortest = Math.min(shortest, secret.length);
    }
    this.edgeChar = new Int32Array(total).fill(-1);
    this.edgeNext = new Int32Array(total);
    this.fail = new Int32Array(total);
    this.depths = new Int32Array(total);
    this.matches = new Int32Array(total);
    const terminal = new Uint8Array(total);
    let states = 1;
    for (const secret of list) {
      let state = 0;
      for (let i = 0; i < secret.length; i++) {
        const c = secret.charCodeAt(i);
        let next = this.child(state, c);
        if (next === 0) {
          next = states++;
          this.depths[next] = i + 1;
          this.addChild(state, c, next);
        }
        state = next;
      }
      terminal[state] = 1;
    }
    this.buildFailLinks(terminal);
    this.window = list.length === 0 ? BLOCK : Math.max(BLOCK, Math.min(MAX_WINDOW, shortest));
    for (const secret of list) {
      for (let q = 0; q + BLOCK <= this.window; q++) {
        const h = blockHash(
          secret.charCodeAt(q),
          secret.charCodeAt(q + 1),
          secret.charCodeAt(q + 2),
          secret.charCodeAt(q + 3),
        );
        if ((this.blocks[h] ?? 0) < q + 1) this.blocks[h] = q + 1;
      }
    }
  }

  /** The state after reading `c` in `state`. */
  next(state: number, c: number): number {
    let s = state;
    for (;;) {
      const child = this.child(s, c);
      if (child !== 0) return child;
      if (s === 0) return 0;
      s = this.fail[s]!;
    }
  }

  /** Length of the longest secret ending at this state, 0 when none does. */
  matchLength(state: number): number {
    return this.matches[state]!;
  }

  /** How many characters of the text so far may still begin a secret. */
  depth(state: number): number {
    return this.depths[state]!;
  }

  /**
   * From the root, with the window ending at `blockStart + 4`: how far the scan may jump
   * without missing a secret (0: read the next character through the automaton).
   */
  skip(text: string, blockStart: number): number {
    const entry =
      this.blocks[
        blockHash(
          text.charCodeAt(blockStart),
          text.charCodeAt(blockStart + 1),
          text.charCodeAt(blockStart + 2),
          text.charCodeAt(blockStart + 3),
        )
      ]!;
    if (entry === 0) return this.window - BLOCK + 1;
    return this.window - BLOCK - (entry - 1);
  }

  private child(state: number, c: number): number {
    if (state === 0) return this.root[c]!;
    if (this.edgeChar[state] === c) return this.edgeNext[state]!;
    return this.branches.get(state)?.get(c) ?? 0;
  }

  private addChild(state: number, c: number, next: number): void {
    if (state === 0) this.root[c] = next;
    else if (this.edgeChar[state] === -1) {
      this.edgeChar[state] = c;
      this.edgeNext[state] = next;
    } else {
      let branch = this.branches.get(state);
      if (!branch) {
        branch = new Map();
        this.branches.set(state, branch);
      }
      branch.set(c, next);
    }
  }

  private children(state: number, visit: (c: number, child: number) => void): void {
    if (this.edgeChar[state] !== -1) visit(this.edgeChar[state]!, this.edgeNext[state]!);
    const branch = this.branches.get(state);
    if (branch) for (const [c, child] of branch) visit(c, child);
  }

  private buildFailLinks(terminal: Uint8Array): void {
    const queue: number[] = [];
    for (let c = 0; c < 65536; c++) {
      const child = this.root[c]!;
      if (child === 0) continue;
      this.fail[child] = 0;
      this.matches[child] = terminal[child] ? this.depths[child]! : 0;
      queue.push(child);
    }
    for (let head = 0; head < queue.length; head++) {
      const state = queue[head]!;
      this.children(state, (c, child) => {
        this.fail[child] = this.next(this.fail[state]!, c);
        this.matches[child] = terminal[child] ? this.depths[child]! : this.matches[this.fail[child]!]!;
        queue.push(child);
      });
    }
  }
}
