/**
 * Deterministic pseudo-randomness for the synthetic files: the same inputs give the same bytes on
 * every machine and every run. Not for secrets (those use `node:crypto`, src/lib/tokens.ts).
 */

/** FNV-1a (32-bit) of a string: a stable seed from a name. */
export function seedOf(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** An avalanching 32-bit mix ("lowbias32", C. Wellons, hash-prospector). */
export function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x21f0aaad);
  h ^= h >>> 15;
  h = Math.imul(h, 0x735a2d97);
  h ^= h >>> 15;
  return h >>> 0;
}

/** A hash of a seed and up to three integers (any sign, below 2^31 in magnitude). */
export function hashOf(seed: number, a: number, b = 0, c = 0): number {
  let h = mix32(seed ^ 0x9e3779b9);
  h = mix32(h ^ (a | 0));
  h = mix32(h + Math.imul(b | 0, 0x85ebca6b));
  return mix32(h ^ Math.imul(c | 0, 0xc2b2ae35));
}

/** Mulberry32: a small, fast generator, reseeded per security so rows do not depend on order. */
export class Rng {
  private state = 0;

  constructor(seed = 0) {
    this.state = seed | 0;
  }

  reseed(seed: number): this {
    this.state = seed | 0;
    return this;
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniform float in [0, 1). */
  float(): number {
    return this.next() / 4294967296;
  }

  /** A uniform integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** A uniform integer in [min, max]. */
  between(min: number, max: number): number {
    return min + this.below(max - min + 1);
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)] as T;
  }

  /** One of `items`, chosen with the given weights (same length). Prefer {@link createWeighted} in loops. */
  weighted<T>(items: readonly T[], weights: readonly number[]): T {
    return createWeighted(items, weights)(this);
  }

  /** A log-uniform integer in [min, max]. Prefer {@link createLogUniform} in loops. */
  logUniform(min: number, max: number): number {
    return Math.round(min * Math.exp(this.float() * Math.log(max / min)));
  }
}

/** A weighted choice among `items`, with its cumulative thresholds computed once. */
export function createWeighted<T>(items: readonly T[], weights: readonly number[]): (rng: Rng) => T {
  if (items.length !== weights.length || items.length === 0) throw new RangeError('items and weights must match');
  const total = weights.reduce((a, b) => a + b, 0);
  let sum = 0;
  const thresholds = weights.map((w) => {
    sum += w;
    return Math.floor((sum / total) * 4294967296);
  });
  thresholds[thresholds.length - 1] = 4294967296;
  const last = items.length - 1;
  return (rng) => {
    const x = rng.next();
    let i = 0;
    while (i < last && x >= (thresholds[i] as number)) i++;
    return items[i] as T;
  };
}

/**
 * Log-uniform integers in [min, max] (as many short values as long ones per doubling), from a
 * table of 1024 steps so the hot loop does no `Math.exp`.
 */
export function createLogUniform(min: number, max: number): (rng: Rng) => number {
  const table = Int32Array.from({ length: 1024 }, (_, i) => Math.round(min * (max / min) ** ((i + 0.5) / 1024)));
  return (rng) => table[rng.next() >>> 22] as number;
}

const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** `value` in bijective letters A–Z, exactly `width` of them (value below 26^width). */
export function letters(value: number, width: number): string {
  let out = '';
  let v = value;
  for (let i = 0; i < width; i++) {
    out = LETTERS[v % 26] + out;
    v = Math.floor(v / 26);
  }
  return out;
}

function gcd(a: number, b: number): number {
  let [x, y] = [a, b];
  while (y) [x, y] = [y, x % y];
  return x;
}

/**
 * A bijection of [0, size): `x ↦ (a·x + c) mod size`, `a` coprime with `size`. Spreads sequential
 * indexes over an identifier space without two of them ever meeting (unique CUSIPs and symbols).
 */
export function createPermutation(size: number, seed: number): (x: number) => number {
  // a·x stays below size² (exact in a double for the spaces used here); a large a scatters neighbours.
  const low = Math.floor(size / 3);
  let a = (low + (mix32(seed) % (size - low))) | 1;
  while (gcd(a, size) !== 1) a += 2;
  const c = mix32(seed ^ 0x5bd1e995) % size;
  return (x) => (a * x + c) % size;
}
