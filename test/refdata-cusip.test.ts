import { describe, expect, it } from 'vitest';
import {
  addDays,
  businessDayOfDay,
  businessDaysEndingOn,
  dayNumber,
  dayOfBusinessDay,
  isIsoDate,
  isoDateOfDay,
  isWeekend,
} from '../src/refdata/business-days.ts';
import { completeCusip, cusipCheckDigit, isValidCusip } from '../src/refdata/cusip.ts';

/** Real CUSIPs, as published by their issuers (equities, and US Treasury securities). */
const REAL_CUSIPS = {
  'Apple Inc common stock': '037833100',
  'Microsoft Corp common stock': '594918104',
  'Google Inc class C (2014)': '38259P508',
  'Alphabet Inc class A': '02079K305',
  'Amazon.com Inc': '023135106',
  'Exxon Mobil Corp': '30231G102',
  'JPMorgan Chase & Co': '46625H100',
  'Citigroup Inc': '172967424',
  'Morgan Stanley': '617446448',
  'AT&T Inc': '00206R102',
  'Verizon Communications': '92343V104',
  'UnitedHealth Group': '91324P102',
  'US Treasury bond (912810…)': '912810SN9',
  'US Treasury note (912828…)': '912828Z78',
  'US Treasury note (91282C…)': '91282CJL6',
  'US Treasury bill (912797…)': '912797GK7',
};

describe('CUSIP check digit (modulus 10 double-add-double)', () => {
  it.each(Object.entries(REAL_CUSIPS))('computes the check digit of %s', (_name, cusip) => {
    expect(cusipCheckDigit(cusip.slice(0, 8))).toBe(cusip[8]);
    expect(completeCusip(cusip.slice(0, 8))).toBe(cusip);
    expect(isValidCusip(cusip)).toBe(true);
  });

  it('values *, @ and # as 36, 37 and 38, doubled at odd indexes', () => {
    expect(cusipCheckDigit('000000*0')).toBe('1'); // 36 → 3 + 6 = 9
    expect(cusipCheckDigit('0000000*')).toBe('1'); // 72 → 7 + 2 = 9
    expect(cusipCheckDigit('0000000@')).toBe('9'); // 74 → 7 + 4 = 11
    expect(cusipCheckDigit('000000#0')).toBe('9'); // 38 → 3 + 8 = 11
  });

  it('rejects wrong check digits, lower case, wrong lengths and foreign characters', () => {
    expect(isValidCusip('037833101')).toBe(false);
    expect(isValidCusip('38259p508')).toBe(false);
    expect(isValidCusip('03783310')).toBe(false);
    expect(isValidCusip('0378331000')).toBe(false);
    expect(isValidCusip('03783-100')).toBe(false);
    expect(() => cusipCheckDigit('0378')).toThrow(RangeError);
  });

  it('catches every single-digit typo', () => {
    const cusip = REAL_CUSIPS['Apple Inc common stock'];
    for (let i = 0; i < 9; i++) {
      for (const c of '0123456789') {
        if (c === cusip[i]) continue;
        const typo = cusip.slice(0, i) + c + cusip.slice(i + 1);
        expect(isValidCusip(typo), typo).toBe(false);
      }
    }
  });
});

describe('business days', () => {
  it('validates real calendar dates only', () => {
    expect(isIsoDate('2024-02-29')).toBe(true);
    expect(isIsoDate('2026-02-29')).toBe(false);
    expect(isIsoDate('2026-13-01')).toBe(false);
    expect(isIsoDate('2026-1-01')).toBe(false);
    expect(isIsoDate('20261204')).toBe(false);
    expect(isIsoDate('2026-12-04T00:00:00Z')).toBe(false);
  });

  it('counts weekdays only, a weekend mapping to the Friday before it', () => {
    expect(isWeekend('2026-12-05')).toBe(true); // Saturday
    expect(isWeekend('2026-12-07')).toBe(false); // Monday
    const friday = businessDayOfDay(dayNumber('2026-12-04'));
    expect(businessDayOfDay(dayNumber('2026-12-05'))).toBe(friday);
    expect(businessDayOfDay(dayNumber('2026-12-06'))).toBe(friday);
    expect(businessDayOfDay(dayNumber('2026-12-07'))).toBe(friday + 1);
    for (let b = friday - 20; b < friday + 20; b++) {
      const day = dayOfBusinessDay(b);
      expect(isWeekend(isoDateOfDay(day))).toBe(false);
      expect(businessDayOfDay(day)).toBe(b);
    }
  });

  it('lists the N business days ending at a date, skipping weekends', () => {
    expect(businessDaysEndingOn('2026-12-06', 3)).toEqual(['2026-12-02', '2026-12-03', '2026-12-04']);
    expect(businessDaysEndingOn('2026-12-08', 3)).toEqual(['2026-12-04', '2026-12-07', '2026-12-08']);
    expect(addDays('2026-03-01', -1)).toBe('2026-02-28');
  });
});
