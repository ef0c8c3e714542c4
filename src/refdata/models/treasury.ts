import { createLogUniform, createWeighted, hashOf, Rng } from '../seeded.ts';
import { DateFormats, type SecurityModel, type Slot } from '../universe.ts';
import { couponText, createSymbolDigits, cusipCharacters, cusipOf, issueNumber, yieldLevel } from './common.ts';

type TreasuryType = 'BILL' | 'NOTE' | 'BOND' | 'TIPS';

interface TreasurySlot extends Slot {
  type: TreasuryType;
  /** `13W`, `10Y`… */
  term: string;
  issuer: string;
  /** Position among the slots sharing the issuer number. */
  r: number;
}

/** Slots per issuer number: 1156 issue numbers make 4 generations per slot before one is reused. */
const PER_PREFIX = 289;

/**
 * Where each type's CUSIPs come from: the real Treasury issuer numbers (bills 912795–912797,
 * notes and TIPS 912827/912828/91282C, bonds 912810), each block a range of slot positions in it.
 */
const BLOCKS: Record<TreasuryType, readonly (readonly [prefix: string, from: number, count: number])[]> = {
  BILL: [
    ['912797', 0, 289],
    ['912796', 0, 289],
    ['912795', 0, 289],
  ],
  NOTE: [
    ['912828', 0, 192],
    ['91282C', 0, 192],
    ['912827', 0, 289],
  ],
  TIPS: [
    ['912828', 192, 97],
    ['91282C', 192, 97],
  ],
  BOND: [['912810', 0, 289]],
};
const OVERFLOW_LETTER: Record<TreasuryType, string> = { BILL: 'W', NOTE: 'X', TIPS: 'Y', BOND: 'Z' };

/** Of every 25 slots: 10 bills, 10 notes, 3 bonds, 2 TIPS. */
const PATTERN: readonly [TreasuryType, number][] = [
  ['BILL', 10],
  ['NOTE', 10],
  ['BOND', 3],
  ['TIPS', 2],
];

interface Term {
  label: string;
  days: number;
}

function terms(labels: string[], days: number[], weights: number[]): (rng: Rng) => Term {
  return createWeighted(
    labels.map((label, i) => ({ label, days: days[i] as number })),
    weights,
  );
}

const couponReopeningEvery = createLogUniform(130, 780);

const TERMS: Record<TreasuryType, (rng: Rng) => Term> = {
  // Bills: weeks × 5 business days.
  BILL: terms(['4W', '6W', '8W', '13W', '17W', '26W', '52W'], [20, 30, 40, 65, 85, 130, 260], [3, 2, 2, 3, 1, 3, 1]),
  // Notes, bonds, TIPS: years × 261 business days.
  NOTE: terms(['2Y', '3Y', '5Y', '7Y', '10Y'], [522, 783, 1305, 1827, 2610], [3, 3, 3, 2, 3]),
  BOND: terms(['20Y', '30Y'], [5220, 7830], [1, 3]),
  TIPS: terms(['5Y', '10Y', '30Y'], [1305, 2610, 7830], [2, 2, 1]),
};

function typeOf(k: number): { type: TreasuryType; index: number } {
  const cycle = Math.floor(k / 25);
  let at = k % 25;
  for (const [type, count] of PATTERN) {
    if (at < count) return { type, index: cycle * count + at };
    at -= count;
  }
  throw new Error('unreachable');
}

function issuerFor(type: TreasuryType, index: number): { issuer: string; r: number } {
  let i = index;
  for (const [prefix, from, count] of BLOCKS[type]) {
    if (i < count) return { issuer: prefix, r: from + i };
    i -= count;
  }
  // Universes bigger than the real issuer numbers hold: invented 91W…–91Z… numbers, one letter per type.
  const block = Math.floor(i / PER_PREFIX);
  return { issuer: `91${OVERFLOW_LETTER[type]}${cusipCharacters(block, 3)}`, r: i % PER_PREFIX };
}

const DESCRIPTIONS: Record<TreasuryType, string> = {
  BILL: 'US TREASURY BILL',
  NOTE: 'US TREASURY NOTE',
  BOND: 'US TREASURY BOND',
  TIPS: 'US TREASURY INFL IDX',
};

/** TRACE Treasury: bills, notes, bonds and TIPS, bills rolling over at maturity. */
export function createTreasuryModel(seed: number, size: number): SecurityModel<TreasurySlot> {
  const dates = new DateFormats();
  const rng = new Rng();
  const symbolDigits = createSymbolDigits(seed ^ 0x7357, size, 36);
  return {
    columns: [
      'SYMBOL',
      'CUSIP',
      'SECURITY_TYPE',
      'DESCRIPTION',
      'COUPON',
      'MATURITY_DATE',
      'ISSUE_DATE',
      'ORIGINAL_TERM',
      'AMOUNT_OUTSTANDING_MM',
      'STRIPS_ELIGIBLE',
    ],

    slots() {
      let k = 0;
      return () => {
        const { type, index } = typeOf(k);
        const { issuer, r } = issuerFor(type, index);
        rng.reseed(hashOf(seed, k));
        const term = TERMS[type](rng);
        const life = term.days;
        // Reopenings: a 26- or 52-week bill is reissued every 13 weeks; coupon issues now and then.
        const changeEvery = type === 'BILL' ? 65 : couponReopeningEvery(rng);
        const slot: TreasurySlot = {
          k,
          life,
          phase: rng.below(life),
          changeEvery,
          changePhase: rng.below(changeEvery),
          type,
          term: term.label,
          issuer,
          r,
        };
        k++;
        return slot;
      };
    },

    row(slot, s) {
      rng.reseed(hashOf(seed, slot.k, s.generation));
      const cusip = cusipOf(slot.issuer, issueNumber(slot.r, s.generation, PER_PREFIX));
      const maturity = s.ends;
      let coupon = '0.000';
      let amount: number;
      let reopening: number;
      if (slot.type === 'BILL') {
        amount = rng.between(30, 90) * 1000;
        reopening = rng.between(40, 75) * 1000;
      } else {
        const level = yieldLevel(dates.year(s.listed)) + (slot.type === 'BOND' ? 0.4 : 0);
        const real = slot.type === 'TIPS' ? -2.1 : 0;
        coupon = couponText(Math.max(0.125, level + real + (rng.float() - 0.5)));
        amount = rng.between(slot.type === 'NOTE' ? 40 : 12, slot.type === 'NOTE' ? 75 : 30) * 1000;
        reopening = rng.between(3, 25) * 1000;
      }
      const description =
        slot.type === 'BILL'
          ? `${DESCRIPTIONS.BILL} ${dates.mdy(maturity)}`
          : `${DESCRIPTIONS[slot.type]} ${coupon}% ${dates.mdy(maturity)}`;
      return `UST${symbolDigits(slot.k, s.generation)}|${cusip}|${slot.type}|${description}|${coupon}|${dates.ymd(
        maturity,
      )}|${dates.ymd(s.listed)}|${slot.term}|${amount + s.changes * reopening}|${slot.type === 'BILL' ? 'N' : 'Y'}`;
    },
  };
}
