/**
 * How the synthetic files stay consistent with each other from day to day.
 *
 * A facility's universe is a fixed number of slots. A slot holds one security at a time: the
 * security of generation `g = ⌊(b + phase) / life⌋` on business day `b`, listed on the first day
 * of its generation and deleted (matured, redeemed, delisted) when the next one is listed in its
 * place. Its changing attributes (rating, amount outstanding, factor, tier) have a version
 * `⌊(b + changePhase) / changeEvery⌋`. So any day's master, and the daily list of what changed
 * since the previous business day, are computed directly from the date, without replaying
 * history: a daily list's deletes and changes are exactly securities of the previous day's
 * master, and its adds are not.
 */

import { dayOfBusinessDay, isoDateOfDay } from './business-days.ts';

/** One slot's timing; models add their own fixed attributes (issuer, type…). */
export interface Slot {
  /** 0-based position in the universe; also the row order. */
  k: number;
  /** Business days a security of this slot is listed. */
  life: number;
  /** In [0, life): where the slot is in its cycle. */
  phase: number;
  /** Business days between two changes of the same security; 0 when it never changes. */
  changeEvery: number;
  changePhase: number;
}

/** One security of a slot, as of a business day. */
export interface Security {
  generation: number;
  /** Business day it was listed. */
  listed: number;
  /** Business day it is deleted (the next generation's listing day). */
  ends: number;
  /** Changes since listing, as of the day asked about. */
  changes: number;
  /** Business day of the last change, or of the listing when none. */
  lastChange: number;
}

export function generationOn(slot: Slot, businessDay: number): number {
  return Math.floor((businessDay + slot.phase) / slot.life);
}

/** Generation `g` of `slot` as of `businessDay` (at most its last day: a deleted security is frozen). */
export function securityOf(slot: Slot, generation: number, businessDay: number): Security {
  const listed = generation * slot.life - slot.phase;
  const ends = listed + slot.life;
  const day = Math.min(businessDay, ends - 1);
  let changes = 0;
  let lastChange = listed;
  if (slot.changeEvery > 0 && day > listed) {
    const version = Math.floor((day + slot.changePhase) / slot.changeEvery);
    changes = version - Math.floor((listed + slot.changePhase) / slot.changeEvery);
    if (changes > 0) lastChange = version * slot.changeEvery - slot.changePhase;
  }
  return { generation, listed, ends, changes, lastChange };
}

/** The kind of row a model renders: a master's active row, or an inactive list's row. */
export type RowKind = 'active' | 'inactive';

/** A facility's securities: its columns, its slots in order, and one security's row. */
export interface SecurityModel<S extends Slot = Slot> {
  readonly columns: readonly string[];
  /** A cursor over slots 0, 1, 2… of a universe of `size` slots (may reuse the returned object). */
  slots(size: number): () => S;
  /** The row (no line end) of `security` in `slot`; fields never contain `|` or line breaks. */
  row(slot: S, security: Security, kind: RowKind): string;
}

/** Formats business days as dates; cached, since a file holds a few thousand distinct dates. */
export class DateFormats {
  private readonly compact: string[] = [];
  private readonly us: string[] = [];
  private readonly years: number[] = [];

  private fill(businessDay: number): void {
    const iso = isoDateOfDay(dayOfBusinessDay(businessDay));
    this.compact[businessDay] = iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10);
    this.us[businessDay] = `${iso.slice(5, 7)}/${iso.slice(8, 10)}/${iso.slice(0, 4)}`;
    this.years[businessDay] = Number(iso.slice(0, 4));
  }

  /** `YYYYMMDD`, the date format of the FINRA pipe-delimited files. */
  ymd(businessDay: number): string {
    const s = this.compact[businessDay];
    if (s !== undefined) return s;
    this.fill(businessDay);
    return this.compact[businessDay] as string;
  }

  /** `MM/DD/YYYY`, as in security descriptions. */
  mdy(businessDay: number): string {
    if (this.us[businessDay] === undefined) this.fill(businessDay);
    return this.us[businessDay] as string;
  }

  year(businessDay: number): number {
    if (this.years[businessDay] === undefined) this.fill(businessDay);
    return this.years[businessDay] as number;
  }
}

/** Output chunk size: large writes, few system calls. */
const CHUNK_BYTES = 1 << 20;
/**
 * Text gathered before it is copied into the chunk: small, so row strings die young (a rope of a
 * whole megabyte of rows outlives the young generation and makes garbage collection dominate).
 */
const TEXT_CHARS = 16 << 10;

/** Collects rows into ~1 MiB chunks (ASCII only: latin1 is the fastest exact encoding). */
class Chunker {
  private text = '';
  private chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  private used = 0;
  constructor(private readonly ready: Buffer[]) {}
  line(s: string): void {
    this.text += `${s}\n`;
    if (this.text.length >= TEXT_CHARS) this.copy();
  }
  private copy(): void {
    const text = this.text;
    this.text = '';
    if (this.used + text.length > this.chunk.length) {
      this.emit();
      if (text.length > this.chunk.length) this.chunk = Buffer.allocUnsafe(text.length);
    }
    this.used += this.chunk.write(text, this.used, 'latin1');
  }
  private emit(): void {
    if (this.used) this.ready.push(this.chunk.subarray(0, this.used));
    this.chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    this.used = 0;
  }
  flush(): void {
    if (this.text) this.copy();
    this.emit();
  }
}

/** The master as of `businessDay`: a header and one row per slot. */
export function* masterRows<S extends Slot>(
  model: SecurityModel<S>,
  size: number,
  businessDay: number,
  kind: RowKind = 'active',
): Generator<Buffer> {
  const ready: Buffer[] = [];
  const out = new Chunker(ready);
  out.line(model.columns.join('|'));
  const next = model.slots(size);
  for (let i = 0; i < size; i++) {
    const slot = next();
    const g = generationOn(slot, businessDay);
    // The inactive list holds each slot's last deleted security, as it was on its last day.
    const security = kind === 'active' ? securityOf(slot, g, businessDay) : securityOf(slot, g - 1, businessDay);
    out.line(model.row(slot, security, kind));
    if (ready.length) yield* ready.splice(0);
  }
  out.flush();
  yield* ready.splice(0);
}

/**
 * The daily list of `businessDay`: `D` for each security of the previous business day's master
 * that is gone, `A` for each new one, `C` for each whose attributes changed (its new values).
 */
export function* dailyListRows<S extends Slot>(
  model: SecurityModel<S>,
  size: number,
  businessDay: number,
  effectiveDate: string,
): Generator<Buffer> {
  const ready: Buffer[] = [];
  const out = new Chunker(ready);
  out.line(['ACTION', 'EFFECTIVE_DATE', ...model.columns].join('|'));
  const next = model.slots(size);
  const before = businessDay - 1;
  for (let i = 0; i < size; i++) {
    const slot = next();
    const was = generationOn(slot, before);
    const is = generationOn(slot, businessDay);
    if (was !== is) {
      out.line(`D|${effectiveDate}|${model.row(slot, securityOf(slot, was, before), 'active')}`);
      out.line(`A|${effectiveDate}|${model.row(slot, securityOf(slot, is, businessDay), 'active')}`);
    } else {
      const now = securityOf(slot, is, businessDay);
      if (now.changes !== securityOf(slot, is, before).changes) {
        out.line(`C|${effectiveDate}|${model.row(slot, now, 'active')}`);
      }
    }
    if (ready.length) yield* ready.splice(0);
  }
  out.flush();
  yield* ready.splice(0);
}
