import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isIsoDate } from '../src/refdata/business-days.ts';
import { isValidCusip } from '../src/refdata/cusip.ts';
import { RefdataError } from '../src/refdata/errors.ts';
import { FACILITIES } from '../src/refdata/facilities.ts';
import { DEFAULT_ROWS, type GenerateRequest, generateFile } from '../src/refdata/generate.ts';

interface Parsed {
  text: string;
  header: string[];
  rows: string[][];
}

function generate(request: GenerateRequest): Parsed {
  const text = Buffer.concat([...generateFile(request)]).toString('latin1');
  expect(text.endsWith('\n')).toBe(true);
  const lines = text.slice(0, -1).split('\n');
  const [header, ...rows] = lines.map((l) => l.split('|'));
  return { text, header: header ?? [], rows };
}

/** `YYYYMMDD` fields are real dates. */
function isCompactDate(value: string): boolean {
  return /^\d{8}$/.test(value) && isIsoDate(`${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6, 8)}`);
}

const FILES = FACILITIES.flatMap((f) => f.files.map((k) => ({ facility: f.code, file: k.code, kind: k.kind })));
const DATE = '2026-12-04';

describe('synthetic reference files', () => {
  it.each(FILES)('$facility $file is well-formed pipe-delimited ASCII', ({ facility, file, kind }) => {
    const { text, header, rows } = generate({ facility, file, date: DATE });
    // Printable ASCII only, LF line ends, no tabs or CR.
    expect(/^[\x20-\x7e\n]*$/.test(text)).toBe(true);
    expect(header.length).toBeGreaterThan(5);
    for (const name of header) expect(name).toMatch(/^[A-Z][A-Z0-9_]*$/);
    expect(header).toContain('CUSIP');
    expect(header).toContain('SYMBOL');
    if (kind === 'master') expect(rows).toHaveLength(DEFAULT_ROWS[facility] as number);
    else {
      expect(header.slice(0, 2)).toEqual(['ACTION', 'EFFECTIVE_DATE']);
      expect(rows.length).toBeGreaterThan(10);
      expect(rows.length).toBeLessThan(150);
    }
    const cusipAt = header.indexOf('CUSIP');
    const dateColumns = header.flatMap((h, i) => (h.endsWith('_DATE') ? [i] : []));
    expect(dateColumns.length).toBeGreaterThan(0);
    // Plain checks, one assertion at the end: thousands of expect() calls would dominate the run.
    const problems: string[] = [];
    rows.forEach((row, n) => {
      const where = `row ${n + 1}`;
      // Splitting on | gives exactly the header's fields: no field holds a pipe.
      if (row.length !== header.length) problems.push(`${where}: ${row.length} fields`);
      if (row.includes('')) problems.push(`${where}: an empty field`);
      if (!isValidCusip(row[cusipAt] as string)) problems.push(`${where}: CUSIP ${row[cusipAt]}`);
      for (const i of dateColumns)
        if (!isCompactDate(row[i] as string)) problems.push(`${where}: ${header[i]} ${row[i]}`);
    });
    expect(problems.slice(0, 10)).toEqual([]);
    if (kind === 'master') {
      // One row per security: CUSIPs and symbols are unique within a master.
      expect(new Set(rows.map((r) => r[cusipAt])).size).toBe(rows.length);
      expect(new Set(rows.map((r) => r[header.indexOf('SYMBOL')])).size).toBe(rows.length);
    }
  });

  it.each(FILES)('$facility $file is the same bytes every time, and differs by date', ({ facility, file }) => {
    const sha = (date: string) =>
      createHash('sha256')
        .update(Buffer.concat([...generateFile({ facility, file, date })]))
        .digest('hex');
    expect(sha(DATE)).toBe(sha(DATE));
    expect(sha('2026-12-03')).not.toBe(sha(DATE));
  });

  it('makes masters of the size asked for', () => {
    expect(generate({ facility: 'TRACE-CA', file: 'CAMASTER', date: DATE, rows: 37 }).rows).toHaveLength(37);
    expect(generate({ facility: 'ORF', file: 'EQUITYMASTERIN', date: DATE, rows: 20_000 }).rows).toHaveLength(20_000);
  });

  it('keeps CUSIPs and symbols unique in a large master', () => {
    const { header, rows } = generate({ facility: 'TRACE-CA', file: 'CAMASTER', date: DATE, rows: 100_000 });
    const cusipAt = header.indexOf('CUSIP');
    expect(new Set(rows.map((r) => r[cusipAt])).size).toBe(rows.length);
    expect(new Set(rows.map((r) => r[0])).size).toBe(rows.length);
  });

  it('refuses weekends, impossible dates, unknown codes and silly sizes with the valid choices', () => {
    const refused = (request: GenerateRequest) => {
      try {
        generateFile(request);
      } catch (error) {
        expect(error).toBeInstanceOf(RefdataError);
        return (error as RefdataError).message;
      }
      throw new Error('not refused');
    };
    expect(refused({ facility: 'ORF', file: 'EQUITYMASTERAC', date: '2026-12-05' })).toMatch(/Saturday or Sunday/);
    expect(refused({ facility: 'ORF', file: 'EQUITYMASTERAC', date: '2026-02-30' })).toMatch(/YYYY-MM-DD/);
    expect(refused({ facility: 'NYSE', file: 'X', date: DATE })).toMatch(/TRACE-TSY, TRACE-CA, TRACE-SP, ORF, ADF/);
    expect(refused({ facility: 'ORF', file: 'CAMASTER', date: DATE })).toMatch(/EQUITYMASTERAC, EQUITYMASTERIN/);
    expect(refused({ facility: 'ORF', file: 'EQUITYMASTERAC', date: DATE, rows: 0 })).toMatch(/row count/);
    expect(refused({ facility: 'ORF', file: 'EQUITYMASTERAC', date: DATE, rows: 1.5 })).toMatch(/row count/);
  });
});

describe('Treasury and securitized products look like theirs', () => {
  it('gives bills, notes, bonds and TIPS their Treasury CUSIP prefixes, terms and coupons', () => {
    const { header, rows } = generate({ facility: 'TRACE-TSY', file: 'TSYMASTER', date: DATE });
    const col = (name: string) => header.indexOf(name);
    const prefixes: Record<string, string[]> = {
      BILL: ['912795', '912796', '912797'],
      NOTE: ['912827', '912828', '91282C'],
      TIPS: ['912828', '91282C'],
      BOND: ['912810'],
    };
    const seen = new Set<string>();
    const problems: string[] = [];
    for (const row of rows) {
      const type = row[col('SECURITY_TYPE')] as string;
      const cusip = row[col('CUSIP')] as string;
      seen.add(type);
      if (!prefixes[type]?.includes(cusip.slice(0, 6))) problems.push(`${type} ${cusip}`);
      const coupon = Number(row[col('COUPON')]);
      const term = row[col('ORIGINAL_TERM')] as string;
      if (
        type === 'BILL' ? coupon !== 0 || !/^\d+W$/.test(term) : !(coupon > 0 && coupon < 10) || !/^\d+Y$/.test(term)
      ) {
        problems.push(`${type} ${cusip}: coupon ${coupon}, term ${term}`);
      }
      if (coupon * 8 !== Math.round(coupon * 8)) problems.push(`${cusip}: coupon ${coupon} is not in eighths`);
      const [issued, matures] = [Number(row[col('ISSUE_DATE')]), Number(row[col('MATURITY_DATE')])];
      // A master lists what is outstanding: matured securities are gone.
      if (!(issued <= 20261204 && matures > 20261204)) problems.push(`${cusip}: issued ${issued}, matures ${matures}`);
    }
    expect(problems.slice(0, 10)).toEqual([]);
    expect([...seen].sort()).toEqual(['BILL', 'BOND', 'NOTE', 'TIPS']);
  });

  it('has agency pass-throughs, CMOs and ABS with factors between 0 and 1', () => {
    const { header, rows } = generate({ facility: 'TRACE-SP', file: 'SPMASTER', date: DATE });
    const types = new Set(rows.map((r) => r[header.indexOf('SUB_PRODUCT')]));
    expect([...types].sort()).toEqual(['ABS', 'CMO', 'MBS']);
    const factors = rows.map((r) => Number(r[header.indexOf('FACTOR')]));
    expect(factors.filter((f) => !(f > 0 && f <= 1))).toEqual([]);
    expect(factors.filter((f) => f < 1).length).toBeGreaterThan(rows.length / 2);
    const issuers = new Set(rows.map((r) => r[header.indexOf('ISSUER_NAME')]));
    expect(issuers).toContain('Federal National Mortgage Association');
    expect(issuers).toContain('Government National Mortgage Association');
  });

  it('gives corporate bonds TRACE symbols, IG/HY grades and 144A flags', () => {
    const { header, rows } = generate({ facility: 'TRACE-CA', file: 'CAMASTER', date: DATE });
    const col = (name: string) => header.indexOf(name);
    const apple = rows.filter((r) => r[col('ISSUER_NAME')] === 'Apple Inc');
    expect(apple.length).toBeGreaterThan(0);
    for (const r of apple) {
      expect(r[col('SYMBOL')]).toMatch(/^AAPL\d{7}$/);
      expect(r[col('CUSIP')]?.startsWith('037833')).toBe(true);
    }
    expect(new Set(rows.map((r) => r[col('GRADE')]))).toEqual(new Set(['IG', 'HY']));
    expect(new Set(rows.map((r) => r[col('RULE_144A')]))).toEqual(new Set(['Y', 'N']));
    expect(new Set(rows.map((r) => r[col('SUB_PRODUCT')]))).toEqual(new Set(['CORP', 'AGCY']));
  });

  it('keeps ORF active and inactive lists apart, with tiers and status dates', () => {
    const active = generate({ facility: 'ORF', file: 'EQUITYMASTERAC', date: DATE });
    const inactive = generate({ facility: 'ORF', file: 'EQUITYMASTERIN', date: DATE });
    const cusips = (p: Parsed) => new Set(p.rows.map((r) => r[p.header.indexOf('CUSIP')]));
    const inactiveCusips = cusips(inactive);
    const both = [...cusips(active)].filter((c) => inactiveCusips.has(c));
    expect(both).toEqual([]);
    const tier = active.header.indexOf('MARKET_TIER');
    expect(new Set(active.rows.map((r) => r[tier]))).toEqual(new Set(['OTCQX', 'OTCQB', 'PINK', 'GREY']));
    for (const [p, status] of [
      [active, 'A'],
      [inactive, 'I'],
    ] as const) {
      expect(new Set(p.rows.map((r) => r[p.header.indexOf('STATUS')]))).toEqual(new Set([status]));
      expect(p.rows.filter((r) => Number(r[p.header.indexOf('STATUS_DATE')]) > 20261204)).toEqual([]);
    }
  });
});

/** Applies a daily list to the previous business day's master, checking every action on the way. */
function applyDailyList(previous: Parsed, daily: Parsed): Map<string, string> {
  const cusipAt = previous.header.indexOf('CUSIP');
  const book = new Map(previous.rows.map((r) => [r[cusipAt] as string, r.join('|')]));
  const counts = { A: 0, D: 0, C: 0 };
  for (const row of daily.rows) {
    const [action, , ...fields] = row;
    const cusip = fields[cusipAt] as string;
    const line = fields.join('|');
    if (action === 'D') {
      // A delete names a security of the previous master, exactly as it was listed.
      expect(book.get(cusip), `delete of ${cusip}`).toBe(line);
      book.delete(cusip);
    } else if (action === 'C') {
      expect(book.has(cusip), `change of ${cusip}`).toBe(true);
      expect(book.get(cusip), `change of ${cusip} changes something`).not.toBe(line);
      book.set(cusip, line);
    } else {
      expect(action).toBe('A');
      expect(book.has(cusip), `add of ${cusip}`).toBe(false);
      book.set(cusip, line);
    }
    counts[action as 'A' | 'D' | 'C']++;
  }
  expect(counts.A).toBeGreaterThan(0);
  expect(counts.D).toBeGreaterThan(0);
  expect(counts.C).toBeGreaterThan(0);
  return book;
}

describe('daily lists agree with the masters', () => {
  const pairs = [
    ['TRACE-TSY', 'TSYMASTER', 'TSYDAILYLIST'],
    ['TRACE-CA', 'CAMASTER', 'CADAILYLIST'],
    ['TRACE-SP', 'SPMASTER', 'SPDAILYLIST'],
    ['ADF', 'ADFEQUITYMASTER', 'ADFDAILYLIST'],
  ] as const;
  const days = [
    ['2026-12-02', '2026-12-03'],
    ['2026-12-04', '2026-12-07'], // Friday to Monday
  ] as const;

  for (const [facility, master, list] of pairs) {
    it.each(days)(`${facility}: master %s + daily list %s = that day's master`, (before, date) => {
      const previous = generate({ facility, file: master, date: before });
      const daily = generate({ facility, file: list, date });
      const today = generate({ facility, file: master, date });
      for (const row of daily.rows) expect(row[1]).toBe(date.replaceAll('-', ''));
      const book = applyDailyList(previous, daily);
      const cusipAt = today.header.indexOf('CUSIP');
      expect(book).toEqual(new Map(today.rows.map((r) => [r[cusipAt] as string, r.join('|')])));
    });
  }

  it('stays consistent for a bigger universe given the same --rows', () => {
    const rows = 30_000;
    const previous = generate({ facility: 'TRACE-CA', file: 'CAMASTER', date: '2026-12-04', rows });
    const daily = generate({ facility: 'TRACE-CA', file: 'CADAILYLIST', date: '2026-12-07', rows });
    const today = generate({ facility: 'TRACE-CA', file: 'CAMASTER', date: '2026-12-07', rows });
    const book = applyDailyList(previous, daily);
    expect(book.size).toBe(rows);
    expect(new Set(book.values())).toEqual(new Set(today.rows.map((r) => r.join('|'))));
  });
});
