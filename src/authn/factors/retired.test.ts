import { describe, expect, it } from 'vitest';
import { maskPhone, parseE164, retirementLabel, retirementMoment } from './retired.ts';

describe('retired factors', () => {
  const policy = { retiredFactorsDate: '2025-12-31' };
  it('are retired from 00:00 UTC of the configured day', () => {
    expect(retirementMoment(policy)).toBe(Date.parse('2025-12-31T00:00:00Z'));
    expect(retirementLabel(policy, Date.parse('2025-12-30T23:59:59Z'))).toBe('retires on 2025-12-31');
    expect(retirementLabel(policy, Date.parse('2025-12-31T00:00:00Z'))).toBe('retired since 2025-12-31');
  });
  it('take phone numbers in E.164 only, and show only the last four digits', () => {
    expect(parseE164(' +12125550100 ')).toBe('+12125550100');
    for (const bad of ['12125550100', '+0212555', '+1 212 555 0100', '+1234567890123456']) {
      expect(parseE164(bad)).toBeUndefined();
    }
    expect(maskPhone('+12125550100')).toBe('+1•••0100');
  });
});
