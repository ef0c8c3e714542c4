import { describe, expect, it } from 'vitest';
import { decodePendingFlow, encodePendingFlow, type PendingFlow } from './pending-cookie.ts';

const NOW = 1_750_000_000_000;
const TTL = 10 * 60_000;
const flow: PendingFlow = {
  state: 'state-abc',
  nonce: 'nonce-def',
  codeVerifier: 'v'.repeat(43),
  startedAt: NOW,
  label: 'nightly job',
};

describe('pending flow cookie value', () => {
  it('round-trips state, nonce, verifier, start time, label and return path', () => {
    expect(decodePendingFlow(encodePendingFlow(flow), NOW + 1000, TTL)).toEqual(flow);
    const signIn = { ...flow, label: undefined, returnTo: '/api/programmatic' };
    expect(decodePendingFlow(encodePendingFlow(signIn), NOW, TTL)).toEqual({
      state: flow.state,
      nonce: flow.nonce,
      codeVerifier: flow.codeVerifier,
      startedAt: NOW,
      returnTo: '/api/programmatic',
    });
  });

  it('expires after its lifetime, and refuses a start time in the future', () => {
    expect(decodePendingFlow(encodePendingFlow(flow), NOW + TTL, TTL)).toBeDefined();
    expect(decodePendingFlow(encodePendingFlow(flow), NOW + TTL + 1, TTL)).toBeUndefined();
    expect(decodePendingFlow(encodePendingFlow({ ...flow, startedAt: NOW + 120_000 }), NOW, TTL)).toBeUndefined();
  });

  it('refuses malformed values', () => {
    for (const bad of [
      undefined,
      '',
      'not base64 json',
      Buffer.from('[]').toString('base64url'),
      Buffer.from(JSON.stringify({ s: 'a', n: 'b', v: 'short', t: NOW })).toString('base64url'),
      Buffer.from(JSON.stringify({ s: 'a', n: 'b', v: 'v'.repeat(43), t: NOW, extra: 1 })).toString('base64url'),
      'x'.repeat(3000),
    ]) {
      expect(decodePendingFlow(bad, NOW, TTL), String(bad).slice(0, 40)).toBeUndefined();
    }
  });
});
