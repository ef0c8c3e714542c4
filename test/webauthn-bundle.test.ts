import { describe, expect, it } from 'vitest';
import { bundleFastPassClient, readCommittedBundle } from '../src/authn/factors/webauthn/bundle.ts';

describe('the FastPass browser script', () => {
  it('is committed as esbuild builds it from its sources (npm run build:assets)', async () => {
    expect(readCommittedBundle()).toBe(await bundleFastPassClient());
  });

  it('waits for the page and needs no eval (CSP: script-src self, no unsafe-eval)', () => {
    const bundle = readCommittedBundle();
    expect(bundle).not.toMatch(/\beval\(|new Function\(/);
    expect(bundle).toContain('DOMContentLoaded');
  });
});
