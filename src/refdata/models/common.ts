import { completeCusip } from '../cusip.ts';
import { createPermutation, letters } from '../seeded.ts';

/** Coupons in eighths of a percent, formatted once: `COUPONS[33]` is `'4.125'`. */
const COUPONS: readonly string[] = Array.from({ length: 8 * 20 + 1 }, (_, i) => (i / 8).toFixed(3));

/** A coupon rounded to the nearest eighth (the usual Treasury and corporate increment), 0–20 %. */
export function couponText(percent: number): string {
  const eighths = Math.max(0, Math.min(160, Math.round(percent * 8)));
  return COUPONS[eighths] as string;
}

/**
 * A rough level of intermediate US Treasury yields in the year a security was issued, so that old
 * bonds carry the coupons of their time (2021 issues near 1 %, 2024 issues near 4 %).
 */
export function yieldLevel(year: number): number {
  if (year < 2001) return 6.0;
  if (year < 2008) return 4.6;
  if (year < 2012) return 3.0;
  if (year < 2020) return 2.2;
  if (year < 2022) return 0.9;
  if (year < 2023) return 2.9;
  return 4.2;
}

/** CUSIP characters: digits and letters without I and O, which read as 1 and 0. */
const CUSIP_CHARACTERS = '0123456789ABCDEFGHJKLMNPQRSTUVWXYZ';
const RADIX = CUSIP_CHARACTERS.length;

/** `value` in CUSIP characters (base 34), left-padded with zeros to `width`. */
export function cusipCharacters(value: number, width: number): string {
  let out = '';
  let v = value;
  for (let i = 0; i < width; i++) {
    out = CUSIP_CHARACTERS[v % RADIX] + out;
    v = Math.floor(v / RADIX);
  }
  return out;
}

/** Issue numbers: two CUSIP characters. */
export const ISSUE_NUMBERS = RADIX * RADIX;

const ISSUER_SPACE = 1000 * RADIX ** 3;

/**
 * Unique synthetic 6-character CUSIP issuer numbers: three digits and three characters, one per
 * index (a permutation, so two indexes never meet), skipping numbers reserved for real issuers.
 */
export function createIssuerNumbers(
  seed: number,
  reserved: ReadonlySet<string> = new Set(),
): (index: number) => string {
  const permute = createPermutation(ISSUER_SPACE, seed);
  const encode = (value: number) => {
    const digits = Math.floor(value / RADIX ** 3);
    return String(digits).padStart(3, '0') + cusipCharacters(value % RADIX ** 3, 3);
  };
  return (index) => {
    const code = encode(permute(index));
    // The reserved numbers are few: their stand-in comes from the never-used top of the space.
    return reserved.has(code) ? encode(permute(ISSUER_SPACE - 1 - index)) : code;
  };
}

/** A CUSIP from a 6-character issuer number and a 2-character issue number. */
export function cusipOf(issuer: string, issue: string): string {
  return completeCusip(issuer + issue);
}

/**
 * The issue number of a slot's security: unique among the `perIssuer` slots sharing an issuer
 * number (slot `r` below `perIssuer`, which divides {@link ISSUE_NUMBERS}), and different from the
 * slot's previous and next securities (generation `g`). A number comes back after
 * ISSUE_NUMBERS / perIssuer generations, as the CUSIPs of long-matured issues are reused.
 */
export function issueNumber(r: number, generation: number, perIssuer: number): string {
  return ISSUE_NUMBER_TEXT[(r + generation * perIssuer) % ISSUE_NUMBERS] as string;
}

const ISSUE_NUMBER_TEXT: readonly string[] = Array.from({ length: ISSUE_NUMBERS }, (_, i) => cusipCharacters(i, 2));

/**
 * Unique digits of TRACE symbols (`AAPL4123456`): one per slot and generation modulo
 * `generations`, at least 7 digits, more for universes too big for 7.
 */
export function createSymbolDigits(seed: number, size: number, generations: number): (k: number, g: number) => string {
  const width = Math.max(7, Math.ceil(Math.log10(size * generations + 1)));
  const permute = createPermutation(10 ** width, seed);
  return (k, g) => String(permute(k * generations + (g % generations))).padStart(width, '0');
}

/** Unique letter symbols (`ABCD`): one per slot and generation modulo `generations`. */
export function createLetterSymbols(seed: number, size: number, generations: number): (k: number, g: number) => string {
  let width = 4;
  while (26 ** width < size * generations) width++;
  const permute = createPermutation(26 ** width, seed);
  return (k, g) => letters(permute(k * generations + (g % generations)), width);
}
