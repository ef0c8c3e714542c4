/**
 * CUSIP identifiers: 6 characters of issuer, 2 of issue, 1 check digit (ANSI X9.6, the
 * "modulus 10 double-add-double" scheme of the CUSIP Global Services specification).
 */

const CUSIP_BODY = /^[0-9A-Z*@#]{8}$/;
const CUSIP = /^[0-9A-Z*@#]{8}[0-9]$/;

function characterValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 65 && c <= 90) return c - 55; // A=10 … Z=35
  if (c === 42) return 36; // *
  if (c === 64) return 37; // @
  return 38; // #
}

/**
 * The check digit of an 8-character CUSIP body: each character's value (digits as themselves,
 * A–Z as 10–35, `*` 36, `@` 37, `#` 38), doubled at even positions, summed digit by digit;
 * the check digit brings the sum to a multiple of ten.
 */
export function cusipCheckDigit(body: string): string {
  if (!CUSIP_BODY.test(body)) throw new RangeError(`Not a CUSIP body (8 of 0-9, A-Z, *, @, #): "${body}"`);
  let sum = 0;
  for (let i = 0; i < 8; i++) {
    let v = characterValue(body.charCodeAt(i));
    if (i % 2 === 1) v *= 2;
    sum += Math.floor(v / 10) + (v % 10);
  }
  return String((10 - (sum % 10)) % 10);
}

/** Digit sums of each character's value: `SUMS[2c]` as is (even index), `SUMS[2c + 1]` doubled. */
const SUMS = Int8Array.from({ length: 256 }, (_, i) => {
  const v = characterValue(i >> 1) * ((i & 1) + 1);
  return Math.floor(v / 10) + (v % 10);
});

/**
 * The full 9-character CUSIP of an 8-character body: {@link cusipCheckDigit} without the input
 * check, for generated bodies (the synthetic files compute millions).
 */
export function completeCusip(body: string): string {
  let sum = 0;
  for (let i = 0; i < 8; i++) sum += SUMS[((body.charCodeAt(i) & 127) << 1) | (i & 1)] as number;
  return body + ((10 - (sum % 10)) % 10);
}

/** Whether `value` is a well-formed CUSIP whose check digit is right (upper case only). */
export function isValidCusip(value: string): boolean {
  return CUSIP.test(value) && cusipCheckDigit(value.slice(0, 8)) === value[8];
}
