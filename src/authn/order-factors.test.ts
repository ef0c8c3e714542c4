import { describe, expect, it } from 'vitest';
import type { FactorRow } from './factors/repository.ts';
import { orderFactors } from './service.ts';

const factor = (id: string, provider: string, created: number): FactorRow => ({
  id,
  user_id: 'u',
  factor_type: 'token:software:totp',
  provider,
  status: 'ACTIVE',
  name: provider,
  secret_enc: null,
  last_used_step: null,
  created_at: created,
  activated_at: created,
  last_used_at: null,
});

describe('orderFactors (the sign-in page offers the last factor used first)', () => {
  const google = factor('a', 'GOOGLE', 1);
  const okta = factor('b', 'OKTA', 2);
  it('puts the factor type verified last first', () => {
    expect(orderFactors([google, okta], 'token:software:totp:OKTA').map((f) => f.id)).toEqual(['b', 'a']);
  });
  it('falls back to enrollment order', () => {
    expect(orderFactors([okta, google], null).map((f) => f.id)).toEqual(['a', 'b']);
  });
});
