import { createLogUniform, createPermutation, createWeighted, hashOf, Rng } from '../seeded.ts';
import { DateFormats, type SecurityModel, type Slot } from '../universe.ts';
import { couponText, createSymbolDigits, cusipCharacters, cusipOf, issueNumber, yieldLevel } from './common.ts';

type Kind = 'MBS' | 'CMO' | 'ABS';

interface Shelf {
  kind: Kind;
  issuerName: string;
  /** Symbol letters and deal-name prefix: `FN`, `FNR`, `FORDO`… */
  short: string;
  /** First two characters of the shelf's CUSIPs. */
  lead: string;
  rule144a: boolean;
}

const AGENCY_POOLS: readonly Shelf[] = [
  { kind: 'MBS', issuerName: 'Federal National Mortgage Association', short: 'FN', lead: '31', rule144a: false },
  { kind: 'MBS', issuerName: 'Federal Home Loan Mortgage Corp', short: 'FR', lead: '31', rule144a: false },
  { kind: 'MBS', issuerName: 'Government National Mortgage Association', short: 'GN', lead: '36', rule144a: false },
];
const AGENCY_CMOS: readonly Shelf[] = [
  { kind: 'CMO', issuerName: 'Fannie Mae REMIC Trust', short: 'FNR', lead: '31', rule144a: false },
  { kind: 'CMO', issuerName: 'Freddie Mac REMIC', short: 'FHR', lead: '31', rule144a: false },
  { kind: 'CMO', issuerName: 'Ginnie Mae REMIC Trust', short: 'GNR', lead: '38', rule144a: false },
];
const ABS_TRUSTS: readonly Shelf[] = [
  { kind: 'ABS', issuerName: 'Ford Credit Auto Owner Trust', short: 'FORDO', lead: '34', rule144a: false },
  { kind: 'ABS', issuerName: 'Toyota Auto Receivables Owner Trust', short: 'TAOT', lead: '89', rule144a: false },
  { kind: 'ABS', issuerName: 'Honda Auto Receivables Owner Trust', short: 'HAROT', lead: '43', rule144a: false },
  { kind: 'ABS', issuerName: 'CarMax Auto Owner Trust', short: 'CARMX', lead: '14', rule144a: false },
  { kind: 'ABS', issuerName: 'Santander Drive Auto Receivables Trust', short: 'SDART', lead: '80', rule144a: false },
  { kind: 'ABS', issuerName: 'Capital One Multi-Asset Execution Trust', short: 'COMET', lead: '14', rule144a: false },
  { kind: 'ABS', issuerName: 'Discover Card Execution Note Trust', short: 'DCENT', lead: '25', rule144a: false },
  {
    kind: 'ABS',
    issuerName: 'American Express Credit Account Master Trust',
    short: 'AMXCA',
    lead: '02',
    rule144a: false,
  },
  { kind: 'ABS', issuerName: 'Navient Student Loan Trust', short: 'NAVSL', lead: '63', rule144a: false },
  { kind: 'ABS', issuerName: 'Hertz Vehicle Financing III LLC', short: 'HERTZ', lead: '42', rule144a: true },
  { kind: 'ABS', issuerName: 'Sunrun Demeter Issuer LLC', short: 'RUNDM', lead: '86', rule144a: true },
];

const CMO_CLASSES =
  'PA PB PC PD PE PF PG PH FA FB SA SB IO PO Z ZA A AB AC AD CA CB KA KB MA MB VA VB GA GB HA HB JA JB LA LB'.split(
    ' ',
  );
const ABS_CLASSES = ['A1', 'A2A', 'A2B', 'A3', 'A4', 'B', 'C', 'D'];
const POOL_PREFIXES: Record<string, readonly string[]> = {
  FN: ['MA', 'CB', 'FS', 'BW'],
  FR: ['SD', 'QE', 'RA'],
  GN: ['MA', 'CP', 'DA'],
};

interface Deal {
  shelf: Shelf;
  /** The shared first six CUSIP characters of the deal's classes or of 34 pools. */
  issuer: string;
  classes: number;
}

interface SecuritizedSlot extends Slot {
  deal: Deal;
  r: number;
}

/** Classes or pools per issuer number at most; divides the 1156 issue numbers. */
const PER_ISSUER = 34;
const dealKind = createWeighted<Kind>(['MBS', 'CMO', 'ABS'], [45, 35, 20]);
const LIFE: Record<Kind, (rng: Rng) => number> = {
  MBS: createLogUniform(260, 7830),
  CMO: createLogUniform(260, 5220),
  ABS: createLogUniform(130, 1300),
};
const factorEvery = createLogUniform(60, 400);
const ABS_SERIES = ['A', 'B', 'C', '1', '2'];
/** Shelf issuer-number suffixes: a digit and three CUSIP characters. */
const SUFFIX_SPACE = 10 * 34 ** 3;

/** TRACE Securitized Products: agency pass-through pools, agency CMOs, ABS; factors pay down. */
export function createSecuritizedModel(seed: number, size: number): SecurityModel<SecuritizedSlot> {
  const dates = new DateFormats();
  const rng = new Rng();
  const symbolDigits = createSymbolDigits(seed ^ 0x5b, size, PER_ISSUER);
  const suffixes = createPermutation(SUFFIX_SPACE, seed);

  const dealAt = (i: number): Deal => {
    const r = new Rng(hashOf(seed, -1, i));
    const kind = dealKind(r);
    const shelf = r.pick(kind === 'MBS' ? AGENCY_POOLS : kind === 'CMO' ? AGENCY_CMOS : ABS_TRUSTS);
    const suffix = suffixes(i);
    const issuer = shelf.lead + String(Math.floor(suffix / 34 ** 3)) + cusipCharacters(suffix % 34 ** 3, 3);
    const classes = kind === 'MBS' ? PER_ISSUER : kind === 'CMO' ? r.between(4, 24) : r.between(3, ABS_CLASSES.length);
    return { shelf, issuer, classes };
  };

  return {
    columns: [
      'SYMBOL',
      'CUSIP',
      'ISSUER_NAME',
      'SUB_PRODUCT',
      'DEAL_NAME',
      'TRANCHE',
      'COUPON',
      'MATURITY_DATE',
      'ISSUE_DATE',
      'ORIGINAL_BALANCE',
      'FACTOR',
      'RULE_144A',
    ],

    slots() {
      let k = 0;
      let dealIndex = 0;
      let deal = dealAt(0);
      let r = 0;
      return () => {
        if (r === deal.classes) {
          deal = dealAt(++dealIndex);
          r = 0;
        }
        rng.reseed(hashOf(seed, k));
        const kind = deal.shelf.kind;
        const life = LIFE[kind](rng);
        // Monthly factors: a daily list is mostly paydowns.
        const changeEvery = factorEvery(rng);
        const slot: SecuritizedSlot = {
          k,
          life,
          phase: rng.below(life),
          changeEvery,
          changePhase: rng.below(changeEvery),
          deal,
          r,
        };
        k++;
        r++;
        return slot;
      };
    },

    row(slot, s) {
      rng.reseed(hashOf(seed, slot.k, s.generation));
      const { shelf } = slot.deal;
      const year = dates.year(s.listed);
      let dealName: string;
      let tranche: string;
      let coupon: number;
      if (shelf.kind === 'MBS') {
        const prefixes = POOL_PREFIXES[shelf.short] ?? ['MA'];
        dealName = `${shelf.short} ${rng.pick(prefixes)}${String(rng.below(10000)).padStart(4, '0')}`;
        tranche = 'PT';
        coupon = Math.round((yieldLevel(year) + 1 + rng.float()) * 2) / 2;
      } else if (shelf.kind === 'CMO') {
        dealName = `${shelf.short} ${year}-${String(rng.between(1, 140)).padStart(3, '0')}`;
        tranche = CMO_CLASSES[slot.r] ?? `X${slot.r}`;
        coupon = tranche === 'PO' ? 0 : yieldLevel(year) + 0.5 + rng.float();
      } else {
        dealName = `${shelf.short} ${year}-${rng.pick(ABS_SERIES)}`;
        tranche = ABS_CLASSES[slot.r] ?? `X${slot.r}`;
        coupon = yieldLevel(year) + 0.2 * slot.r + rng.float();
      }
      const balance = rng.between(4, 2000) * 250_000;
      const paydown = 0.005 + rng.float() * 0.03;
      const factor = (1 - paydown) ** s.changes;
      const cusip = cusipOf(slot.deal.issuer, issueNumber(slot.r, s.generation, PER_ISSUER));
      return `${shelf.short}${symbolDigits(slot.k, s.generation)}|${cusip}|${shelf.issuerName}|${shelf.kind}|${dealName}|${tranche}|${couponText(
        coupon,
      )}|${dates.ymd(s.ends)}|${dates.ymd(s.listed)}|${balance}|${factor.toFixed(8)}|${shelf.rule144a ? 'Y' : 'N'}`;
    },
  };
}
