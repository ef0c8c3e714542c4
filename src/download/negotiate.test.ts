import { describe, expect, it } from 'vitest';
import { acceptsGzip, isCalendarDate, noneMatch, parseRange, rangeStillValid } from './negotiate.ts';
import { createRateLimiter } from './rate-limit.ts';

describe('parseRange (RFC 9110 §14)', () => {
  it('reads the three forms of one byte range, clamped to the file', () => {
    expect(parseRange('bytes=0-499', 1000)).toEqual({ kind: 'range', start: 0, end: 499 });
    expect(parseRange('bytes=500-', 1000)).toEqual({ kind: 'range', start: 500, end: 999 });
    expect(parseRange('bytes=-200', 1000)).toEqual({ kind: 'range', start: 800, end: 999 });
    expect(parseRange('bytes=-2000', 1000)).toEqual({ kind: 'range', start: 0, end: 999 });
    expect(parseRange('bytes=990-5000', 1000)).toEqual({ kind: 'range', start: 990, end: 999 });
    expect(parseRange(' Bytes = 1-1 ', 1000)).toEqual({ kind: 'range', start: 1, end: 1 });
  });

  it('is unsatisfiable past the end, for a zero suffix and for an empty file', () => {
    expect(parseRange('bytes=1000-', 1000)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=-0', 1000)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
  });

  it('ignores what it does not serve: no header, other units, bad syntax, several ranges', () => {
    for (const header of [
      undefined,
      '',
      'items=0-1',
      'bytes=a-b',
      'bytes=5-1',
      'bytes=-',
      'bytes=0-1,3-4',
      'bytes=1e3-',
    ]) {
      expect(parseRange(header, 1000), String(header)).toEqual({ kind: 'whole' });
    }
    expect(parseRange('bytes=99999999999999999999-', 10)).toEqual({ kind: 'whole' });
  });
});

describe('conditional requests (RFC 9110 §13)', () => {
  const etag = '"abc"';
  it('If-None-Match compares weakly and understands lists and *', () => {
    expect(noneMatch(undefined, etag)).toBe(true);
    expect(noneMatch('"abc"', etag)).toBe(false);
    expect(noneMatch('W/"abc"', etag)).toBe(false);
    expect(noneMatch('"x", "abc"', etag)).toBe(false);
    expect(noneMatch('*', etag)).toBe(false);
    expect(noneMatch('"x"', etag)).toBe(true);
  });
  it('If-Range compares strongly and treats a date as changed', () => {
    expect(rangeStillValid(undefined, etag)).toBe(true);
    expect(rangeStillValid('"abc"', etag)).toBe(true);
    expect(rangeStillValid('W/"abc"', etag)).toBe(false);
    expect(rangeStillValid('Wed, 21 Oct 2015 07:28:00 GMT', etag)).toBe(false);
  });
});

describe('acceptsGzip (RFC 9110 §12.5.3)', () => {
  it('honours q-values and *', () => {
    expect(acceptsGzip(undefined)).toBe(false);
    expect(acceptsGzip('gzip')).toBe(true);
    expect(acceptsGzip('gzip, deflate, br')).toBe(true);
    expect(acceptsGzip('br;q=1.0, gzip;q=0.5')).toBe(true);
    expect(acceptsGzip('gzip;q=0')).toBe(false);
    expect(acceptsGzip('identity')).toBe(false);
    expect(acceptsGzip('*')).toBe(true);
    expect(acceptsGzip('*;q=0.1, gzip;q=0')).toBe(false);
    expect(acceptsGzip('x-gzip')).toBe(true);
  });
});

describe('isCalendarDate', () => {
  it('accepts real days written YYYY-MM-DD only', () => {
    expect(isCalendarDate('2026-12-04')).toBe(true);
    expect(isCalendarDate('2024-02-29')).toBe(true);
    for (const v of ['2026-02-29', '2026-13-01', '2026-1-01', '20261204', '2026-12-04T00:00:00Z', '']) {
      expect(isCalendarDate(v), v).toBe(false);
    }
  });
});

describe('createRateLimiter (token bucket)', () => {
  it('allows a burst, then one request per refill interval, per key', () => {
    let now = 0;
    const limiter = createRateLimiter({ perMinute: 60, burst: 3 }, () => now);
    expect([1, 2, 3].map(() => limiter.take('a').ok)).toEqual([true, true, true]);
    expect(limiter.take('a')).toEqual({ ok: false, retryAfterSeconds: 1 });
    expect(limiter.take('b').ok).toBe(true);
    now += 999;
    expect(limiter.take('a').ok).toBe(false);
    now += 1;
    expect(limiter.take('a').ok).toBe(true);
    now += 60_000;
    expect([1, 2, 3, 4].map(() => limiter.take('a').ok)).toEqual([true, true, true, false]);
  });

  it('says how long to wait for a slow refill', () => {
    const limiter = createRateLimiter({ perMinute: 2, burst: 1 }, () => 0);
    expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('a')).toEqual({ ok: false, retryAfterSeconds: 30 });
  });

  it('stays bounded in memory', () => {
    let now = 0;
    const limiter = createRateLimiter({ perMinute: 60, burst: 1 }, () => now, 2);
    limiter.take('a');
    limiter.take('b');
    limiter.take('c');
    now += 1;
    // 'a' was forgotten (the longest idle) and starts again with a full bucket.
    expect(limiter.take('a').ok).toBe(true);
  });
});
