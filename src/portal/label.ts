/** Refresh-token labels are at most this long (issue #4). */
export const LABEL_MAX_LENGTH = 60;

/** The label a token gets when the user leaves the field empty: "Refresh token 2026-12-04". */
export function defaultTokenLabel(now: number): string {
  return `Refresh token ${new Date(now).toISOString().slice(0, 10)}`;
}

export type LabelResult = { ok: true; label: string } | { ok: false; error: string };

// Control characters (C0, DEL, C1) and line or paragraph separators: a label is one line of text.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/**
 * The label a user typed, trimmed, or the default when empty; refused when longer than
 * {@link LABEL_MAX_LENGTH} characters or when it holds control characters.
 */
export function parseTokenLabel(input: unknown, now: number): LabelResult {
  if (input !== undefined && typeof input !== 'string') return { ok: false, error: 'Enter the label as text.' };
  const label = (input ?? '').trim().normalize('NFC');
  if (label === '') return { ok: true, label: defaultTokenLabel(now) };
  if ([...label].length > LABEL_MAX_LENGTH) {
    return { ok: false, error: `Use at most ${LABEL_MAX_LENGTH} characters.` };
  }
  if (FORBIDDEN.test(label)) return { ok: false, error: 'Use letters, digits, spaces and punctuation only.' };
  return { ok: true, label };
}
