import { CORPORATE_SUFFIXES, NAME_STEMS, NAME_TRADES, REAL_ISSUERS, tickerOf } from '../names.ts';
import { createLogUniform, createWeighted, hashOf, Rng } from '../seeded.ts';
import { DateFormats, type SecurityModel, type Slot } from '../universe.ts';
import { couponText, createIssuerNumbers, createSymbolDigits, cusipOf, issueNumber, yieldLevel } from './common.ts';

interface Issuer {
  name: string;
  ticker: string;
  cusip6: string;
  industry: string;
  grade: 'IG' | 'HY';
  subProduct: 'CORP' | 'AGCY';
  /** Rated near the investment-grade line: its changes are upgrades and downgrades, not reopenings. */
  crossover: boolean;
  synthetic: boolean;
}

/** An issuer with the parts of its rows that never change, joined once. */
interface IssuerRows extends Issuer {
  /** `|{ISSUER_NAME}|{SUB_PRODUCT}|` */
  names: string;
  /** `|{INDUSTRY}|` */
  industryField: string;
}

function withRows(issuer: Issuer): IssuerRows {
  // One object shape for real and invented issuers keeps the row code monomorphic.
  return {
    name: issuer.name,
    ticker: issuer.ticker,
    cusip6: issuer.cusip6,
    industry: issuer.industry,
    grade: issuer.grade,
    subProduct: issuer.subProduct,
    crossover: issuer.crossover,
    synthetic: issuer.synthetic,
    names: `|${issuer.name}|${issuer.subProduct}|`,
    industryField: `|${issuer.industry}|`,
  };
}

interface CorporateSlot extends Slot {
  issuer: IssuerRows;
  /** Position among the issuer's slots (at most {@link PER_ISSUER}). */
  r: number;
}

/** Bonds per issuer number at most; divides the 1156 issue numbers (34 generations per slot). */
const PER_ISSUER = 34;
const issuerSize = createWeighted([1, 2, 3, 5, 8, 12, 18, 24, 34], [18, 14, 12, 14, 14, 10, 8, 6, 4]);
const tenorDays = createWeighted(
  [2, 3, 5, 7, 10, 20, 30].map((years) => years * 261),
  [10, 15, 25, 15, 20, 5, 10],
);
const agencyLife = createLogUniform(65, 2610);
const shortLife = createLogUniform(60, 390);
const corporateCoupon = createWeighted(['FXD', 'FRN', 'ZERO'], [88, 9, 3]);
const agencyCoupon = createWeighted(['FXD', 'FRN', 'ZERO'], [80, 5, 15]);

/** TRACE Corporate and Agency: issuers with a handful to dozens of bonds, ratings that move. */
export function createCorporateModel(seed: number, size: number): SecurityModel<CorporateSlot> {
  const dates = new DateFormats();
  const rng = new Rng();
  const symbolDigits = createSymbolDigits(seed ^ 0xca, size, PER_ISSUER);
  const issuerNumbers = createIssuerNumbers(seed, new Set(REAL_ISSUERS.map((i) => i.cusip6)));

  const issuerAt = (i: number): { issuer: IssuerRows; bonds: number } => {
    const r = new Rng(hashOf(seed, -1, i));
    const real = REAL_ISSUERS[i];
    if (real) {
      const bonds = real.subProduct === 'AGCY' ? PER_ISSUER : r.between(12, PER_ISSUER);
      return { issuer: withRows({ ...real, crossover: false, synthetic: false }), bonds };
    }
    const stem = r.pick(NAME_STEMS);
    const [trade, industry] = r.pick(NAME_TRADES);
    const grade = r.chance(0.68) ? 'IG' : 'HY';
    return {
      issuer: withRows({
        name: `${stem} ${trade} ${r.pick(CORPORATE_SUFFIXES)}`,
        ticker: tickerOf(stem, trade),
        cusip6: issuerNumbers(i),
        industry,
        grade,
        subProduct: 'CORP',
        crossover: r.chance(0.3),
        synthetic: true,
      }),
      bonds: issuerSize(r),
    };
  };

  return {
    columns: [
      'SYMBOL',
      'CUSIP',
      'ISSUER_NAME',
      'SUB_PRODUCT',
      'COUPON',
      'COUPON_TYPE',
      'MATURITY_DATE',
      'ISSUE_DATE',
      'RULE_144A',
      'GRADE',
      'CONVERTIBLE',
      'INDUSTRY',
      'AMOUNT_ISSUED',
    ],

    slots() {
      let k = 0;
      let issuerIndex = 0;
      let current = issuerAt(0);
      let r = 0;
      return () => {
        if (r === current.bonds) {
          current = issuerAt(++issuerIndex);
          r = 0;
        }
        rng.reseed(hashOf(seed, k));
        const agency = current.issuer.subProduct === 'AGCY';
        let life: number;
        if (agency) life = agencyLife(rng);
        else if (rng.chance(0.4)) life = shortLife(rng);
        else life = tenorDays(rng);
        // Changes: crossover issuers' ratings move between IG and HY; other bonds are reopened.
        const changeEvery = agency ? 0 : rng.between(150, 600);
        const slot: CorporateSlot = {
          k,
          life,
          phase: rng.below(life),
          changeEvery,
          changePhase: changeEvery ? rng.below(changeEvery) : 0,
          issuer: current.issuer,
          r,
        };
        k++;
        r++;
        return slot;
      };
    },

    row(slot, s) {
      rng.reseed(hashOf(seed, slot.k, s.generation));
      const { issuer } = slot;
      const agency = issuer.subProduct === 'AGCY';
      const couponType = agency ? agencyCoupon(rng) : corporateCoupon(rng);
      const convertible = issuer.synthetic && couponType === 'FXD' && rng.chance(0.05);
      const flipped = issuer.crossover && s.changes % 2 === 1;
      const grade = flipped ? (issuer.grade === 'IG' ? 'HY' : 'IG') : issuer.grade;
      let coupon = '0.000';
      if (couponType !== 'ZERO') {
        const spread = agency ? 0.3 : issuer.grade === 'IG' ? 1.1 : 3.4;
        const level = couponType === 'FRN' ? yieldLevel(2030) : yieldLevel(dates.year(s.listed));
        coupon = couponText(Math.max(0.25, level + spread + (rng.float() - 0.5) - (convertible ? 2 : 0)));
      }
      const rule144a = issuer.synthetic && rng.chance(issuer.grade === 'HY' ? 0.35 : 0.08) ? 'Y' : 'N';
      let amount = rng.between(issuer.grade === 'HY' ? 4 : 10, issuer.grade === 'HY' ? 60 : 120) * 25_000_000;
      if (!issuer.crossover) amount += s.changes * rng.between(2, 20) * 25_000_000;
      const cusip = cusipOf(issuer.cusip6, issueNumber(slot.r, s.generation, PER_ISSUER));
      const flags = `|${rule144a}|${grade}|${convertible ? 'Y' : 'N'}`;
      return `${issuer.ticker}${symbolDigits(slot.k, s.generation)}|${cusip}${issuer.names}${coupon}|${couponType}|${dates.ymd(
        s.ends,
      )}|${dates.ymd(s.listed)}${flags}${issuer.industryField}${amount}`;
    },
  };
}
