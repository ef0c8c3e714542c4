import { CORPORATE_SUFFIXES, FOREIGN_SUFFIXES, NAME_STEMS, NAME_TRADES, OTC_TRADES } from '../names.ts';
import { createLogUniform, createWeighted, hashOf, Rng } from '../seeded.ts';
import { DateFormats, type SecurityModel, type Slot } from '../universe.ts';
import { createIssuerNumbers, createLetterSymbols, cusipOf } from './common.ts';

interface EquitySlot extends Slot {
  /** Index into the model's classes. */
  cls: number;
  /** Tier (ORF) or limit-up/limit-down tier (ADF) at listing; changes move it. */
  tier: number;
}

/**
 * A slot's company changes with each generation; its issuer number and symbol come from the slot
 * and the generation modulo this (a delisted company's symbol is not reused for 4 generations).
 */
const GENERATIONS = 4;

interface EquityClass {
  name: string;
  type: string;
  /** Fifth-letter symbol suffix (Nasdaq convention): F foreign, Y ADR, P preferred, W warrant, U unit. */
  suffix: string;
  issue: string;
  foreign: boolean;
}

const ORF_CLASSES: readonly EquityClass[] = [
  { name: 'Common Stock', type: 'CS', suffix: '', issue: '10', foreign: false },
  { name: 'Ordinary Shares', type: 'ORD', suffix: 'F', issue: '10', foreign: true },
  { name: 'American Depositary Shares', type: 'ADR', suffix: 'Y', issue: '20', foreign: true },
  { name: 'Preferred Stock', type: 'PS', suffix: 'P', issue: '30', foreign: false },
  { name: 'Warrants', type: 'WT', suffix: 'W', issue: '11', foreign: false },
  { name: 'Units', type: 'UT', suffix: 'U', issue: '20', foreign: false },
];
const orfClass = createWeighted([0, 1, 2, 3, 4, 5], [70, 8, 10, 5, 4, 3]);
const orfLife = createLogUniform(250, 5000);
const ORF_TIERS = ['OTCQX', 'OTCQB', 'PINK', 'GREY'];
const orfTier = createWeighted([0, 1, 2, 3], [8, 20, 60, 12]);

/** ORF equity masters: OTC equities with their market tier; inactive ones with their delisting date. */
export function createOrfModel(seed: number, size: number): SecurityModel<EquitySlot> {
  const dates = new DateFormats();
  const rng = new Rng();
  const symbols = createLetterSymbols(seed ^ 0x0f, size, GENERATIONS);
  const issuers = createIssuerNumbers(seed);
  return {
    columns: ['SYMBOL', 'CUSIP', 'ISSUE_NAME', 'ISSUE_CLASS', 'SECURITY_TYPE', 'MARKET_TIER', 'STATUS', 'STATUS_DATE'],

    slots() {
      let k = 0;
      return () => {
        rng.reseed(hashOf(seed, k));
        const life = orfLife(rng);
        const changeEvery = rng.between(250, 1000);
        const slot: EquitySlot = {
          k,
          life,
          phase: rng.below(life),
          changeEvery,
          changePhase: rng.below(changeEvery),
          cls: orfClass(rng),
          tier: orfTier(rng),
        };
        k++;
        return slot;
      };
    },

    row(slot, s, kind) {
      rng.reseed(hashOf(seed, slot.k, s.generation));
      const cls = ORF_CLASSES[slot.cls] as EquityClass;
      const stem = rng.pick(NAME_STEMS);
      const suffix = cls.foreign ? rng.pick(FOREIGN_SUFFIXES) : rng.pick(OTC_SUFFIXES);
      const name = `${stem} ${rng.pick(OTC_TRADES)} ${suffix}`;
      const cusip = cusipOf(issuers(slot.k * GENERATIONS + (s.generation % GENERATIONS)), cls.issue);
      const tier = ORF_TIERS[(slot.tier + s.changes) % ORF_TIERS.length];
      const statusDate = kind === 'active' ? s.lastChange : s.ends;
      return `${symbols(slot.k, s.generation)}${cls.suffix}|${cusip}|${name}|${cls.name}|${cls.type}|${tier}|${
        kind === 'active' ? 'A' : 'I'
      }|${dates.ymd(statusDate)}`;
    },
  };
}

const ADF_TYPES = ['CS', 'ETF', 'ADR', 'PS'];
const adfType = createWeighted([0, 1, 2, 3], [75, 15, 7, 3]);
const adfLife = createLogUniform(100, 1000);
const adfMarket = createWeighted(['NASDAQ', 'NYSE', 'NYSE AMERICAN'], [55, 38, 7]);
const roundLots = createWeighted(['100', '40', '10', '1'], [90, 5, 4, 1]);
const OTC_SUFFIXES = ['Inc', 'Corp', 'Ltd', 'Co'];
const ETF_WORDS = [
  'Select Sector',
  'Total Market',
  'Dividend Growth',
  'Short Duration Bond',
  'Small Cap Value',
  'International Equity',
];

/** ADF equity master: NMS stocks, ETFs and ADRs quoted on the Alternative Display Facility. */
export function createAdfModel(seed: number, size: number): SecurityModel<EquitySlot> {
  const dates = new DateFormats();
  const rng = new Rng();
  const symbols = createLetterSymbols(seed ^ 0xadf, size, GENERATIONS);
  const issuers = createIssuerNumbers(seed);
  return {
    columns: [
      'SYMBOL',
      'CUSIP',
      'ISSUE_NAME',
      'LISTING_MARKET',
      'SECURITY_TYPE',
      'LULD_TIER',
      'ROUND_LOT',
      'LISTED_DATE',
    ],

    slots() {
      let k = 0;
      return () => {
        rng.reseed(hashOf(seed, k));
        const life = adfLife(rng);
        const changeEvery = rng.between(200, 800);
        const slot: EquitySlot = {
          k,
          life,
          phase: rng.below(life),
          changeEvery,
          changePhase: rng.below(changeEvery),
          cls: adfType(rng),
          tier: rng.chance(0.3) ? 0 : 1,
        };
        k++;
        return slot;
      };
    },

    row(slot, s) {
      rng.reseed(hashOf(seed, slot.k, s.generation));
      const type = ADF_TYPES[slot.cls] as string;
      const stem = rng.pick(NAME_STEMS);
      let name: string;
      let market: string;
      if (type === 'ETF') {
        name = `${stem} ${rng.pick(ETF_WORDS)} ETF`;
        market = rng.chance(0.8) ? 'NYSE ARCA' : 'CBOE BZX';
      } else {
        const [trade] = rng.pick(NAME_TRADES);
        const suffix = type === 'ADR' ? rng.pick(FOREIGN_SUFFIXES) : rng.pick(CORPORATE_SUFFIXES);
        name = `${stem} ${trade} ${suffix}${type === 'ADR' ? ' ADS' : type === 'PS' ? ' Preferred' : ''}`;
        market = adfMarket(rng);
      }
      const cusip = cusipOf(issuers(slot.k * GENERATIONS + (s.generation % GENERATIONS)), type === 'PS' ? '30' : '10');
      // Limit-up/limit-down: Tier 1 (S&P 500, Russell 1000, some ETPs) or Tier 2; reviews move it.
      const tier = (slot.tier + s.changes) % 2 === 0 ? '1' : '2';
      // Round lots by price since the 2025 round-lot definition: mostly 100, fewer for high prices.
      const roundLot = roundLots(rng);
      return `${symbols(slot.k, s.generation)}|${cusip}|${name}|${market}|${type}|${tier}|${roundLot}|${dates.ymd(s.listed)}`;
    },
  };
}
