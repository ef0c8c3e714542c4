/**
 * Dates of the reference-data catalog: `YYYY-MM-DD` business dates in UTC. Business days are
 * Monday to Friday; market holidays are not modelled (synthetic data only needs weekdays).
 */

import { RefdataError } from './errors.ts';

const DAY_MS = 86_400_000;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
/** Day number (days since 1970-01-01) of Monday 1970-01-05: business day 0. */
const FIRST_MONDAY = 4;

/** Whether `value` is `YYYY-MM-DD` and a real calendar date (no 2026-02-30). */
export function isIsoDate(value: string): boolean {
  const m = ISO_DATE.exec(value);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = new Date(Date.UTC(y, mo - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d;
}

/** Throws a {@link RefdataError} `INVALID_DATE` unless `value` is a real `YYYY-MM-DD` date. */
export function assertIsoDate(value: string, what = 'date'): string {
  if (!isIsoDate(value)) {
    throw new RefdataError('INVALID_DATE', `Invalid ${what} "${value}": expected a real calendar date as YYYY-MM-DD`);
  }
  return value;
}

/** Days since 1970-01-01 of a `YYYY-MM-DD` date (validate first). */
export function dayNumber(isoDate: string): number {
  return Math.floor(Date.parse(`${isoDate}T00:00:00Z`) / DAY_MS);
}

/** The `YYYY-MM-DD` date of a day number. */
export function isoDateOfDay(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

/** The UTC calendar date of an instant. */
export function utcDate(now: number): string {
  return isoDateOfDay(Math.floor(now / DAY_MS));
}

/** `isoDate` moved by `days` calendar days. */
export function addDays(isoDate: string, days: number): string {
  return isoDateOfDay(dayNumber(isoDate) + days);
}

/** Whether a date falls on Saturday or Sunday. */
export function isWeekend(isoDate: string): boolean {
  const weekday = (dayNumber(isoDate) - FIRST_MONDAY) % 7;
  return (weekday + 7) % 7 >= 5;
}

/**
 * The business-day number of a day: consecutive across weekends (Friday n, Monday n + 1).
 * A Saturday or Sunday maps to the Friday before it, the last business day on or before it.
 */
export function businessDayOfDay(day: number): number {
  const d = day - FIRST_MONDAY;
  const week = Math.floor(d / 7);
  return week * 5 + Math.min(d - week * 7, 4);
}

/** The day number of a business-day number. */
export function dayOfBusinessDay(businessDay: number): number {
  const week = Math.floor(businessDay / 5);
  return FIRST_MONDAY + week * 7 + (businessDay - week * 5);
}

/** The `count` business days ending on `isoDate` (it included when a weekday), oldest first. */
export function businessDaysEndingOn(isoDate: string, count: number): string[] {
  const last = businessDayOfDay(dayNumber(isoDate));
  const out: string[] = [];
  for (let b = last - count + 1; b <= last; b++) out.push(isoDateOfDay(dayOfBusinessDay(b)));
  return out;
}
