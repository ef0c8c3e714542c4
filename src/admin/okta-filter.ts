/** One comparison of an Okta filter expression: `profile.login eq "a@b.example"`. */
export interface FilterTerm {
  attribute: string;
  op: 'eq' | 'sw';
  value: string;
}

export type ParsedFilter = { ok: true; combinator: 'and' | 'or'; terms: FilterTerm[] } | { ok: false; message: string };

const TERM = /^\s*([A-Za-z][A-Za-z0-9_.]*)\s+(eq|sw)\s+("(?:[^"\\]|\\.)*"|true|false|-?\d+)\s*/i;
const JOIN = /^(and|or)\s+/i;

/**
 * Parses the subset of Okta's filter syntax (developer.okta.com "Filter") the management API
 * supports: `attribute op value` terms with `eq` or `sw`, joined by all `and` or all `or`; values
 * are double-quoted strings (`\"` escapes), `true`, `false` or integers. No parentheses, no `not`:
 * a query that needs them is answered with a message rather than a wrong result.
 */
export function parseOktaFilter(input: string): ParsedFilter {
  if (input.length > 2000) return { ok: false, message: 'The filter is too long.' };
  let rest = input.trim();
  const terms: FilterTerm[] = [];
  let combinator: 'and' | 'or' | undefined;
  while (rest.length) {
    const m = TERM.exec(rest);
    if (!m) return { ok: false, message: `Unsupported filter near "${rest.slice(0, 40)}".` };
    const [whole, attribute = '', op = '', raw = ''] = m;
    const value = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
    terms.push({ attribute, op: op.toLowerCase() as 'eq' | 'sw', value });
    rest = rest.slice(whole.length);
    if (!rest.length) break;
    const j = JOIN.exec(rest);
    if (!j) return { ok: false, message: `Expected "and" or "or" near "${rest.slice(0, 40)}".` };
    const joiner = (j[1] ?? '').toLowerCase() as 'and' | 'or';
    if (combinator && combinator !== joiner) {
      return { ok: false, message: 'Mixing "and" and "or" needs parentheses, which are not supported.' };
    }
    combinator = joiner;
    rest = rest.slice(j[0].length);
    if (!rest.length) return { ok: false, message: `The filter ends with "${joiner}".` };
  }
  if (!terms.length) return { ok: false, message: 'The filter is empty.' };
  return { ok: true, combinator: combinator ?? 'and', terms };
}
