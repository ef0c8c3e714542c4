import type { PolicyConfig } from '../../config/schema.ts';
import type { FactorRow } from './repository.ts';

/**
 * SMS and voice call: FINRA retired them on 31 December 2025 (FAQ). They cannot be enrolled; the
 * enrollments imported for migration are listed as retired and never offered at sign-in. This
 * system sends no text messages or calls, so they are never verified here, before or after the
 * retirement date; the date says which words the pages use ("retires on", "retired since").
 */
export const RETIRED_FACTOR_TYPES = ['sms', 'call'] as const;
export type RetiredFactorType = (typeof RETIRED_FACTOR_TYPES)[number];

export function isRetiredFactorType(factorType: string): factorType is RetiredFactorType {
  return (RETIRED_FACTOR_TYPES as readonly string[]).includes(factorType);
}

/** The retirement moment: 00:00 UTC of `policy.retiredFactorsDate`. */
export function retirementMoment(policy: Pick<PolicyConfig, 'retiredFactorsDate'>): number {
  return Date.parse(`${policy.retiredFactorsDate}T00:00:00Z`);
}

/** "SMS" or "Voice call", as the messages name them. */
export function retiredTypeName(factorType: RetiredFactorType): string {
  return factorType === 'sms' ? 'SMS' : 'Voice call';
}

/** How a retired factor is marked: "retired since 2025-12-31" (or "retires on …" before the date). */
export function retirementLabel(policy: Pick<PolicyConfig, 'retiredFactorsDate'>, now: number): string {
  return now >= retirementMoment(policy)
    ? `retired since ${policy.retiredFactorsDate}`
    : `retires on ${policy.retiredFactorsDate}`;
}

/** Why a retired type cannot be enrolled, for the API's error cause and the pages. */
export function notEnrollableMessage(factorType: RetiredFactorType, policy: Pick<PolicyConfig, 'retiredFactorsDate'>) {
  return `${retiredTypeName(factorType)} authentication was retired on ${policy.retiredFactorsDate} and can no longer be enrolled. Choose Okta Verify, Google Authenticator or FastPass.`;
}

/** Why a retired factor is refused at sign-in. */
export function noLongerWorksMessage(factorType: RetiredFactorType, policy: Pick<PolicyConfig, 'retiredFactorsDate'>) {
  return `${retiredTypeName(factorType)} authentication was retired on ${policy.retiredFactorsDate} and no longer works. Sign in again and set up a current method.`;
}

/** The factors sign-in can offer: active and not retired. */
export function usableFactors(factors: readonly FactorRow[]): FactorRow[] {
  return factors.filter((f) => f.status === 'ACTIVE' && !isRetiredFactorType(f.factor_type));
}

/** The user's retired enrollments (imported SMS and voice call). */
export function retiredFactors(factors: readonly FactorRow[]): FactorRow[] {
  return factors.filter((f) => f.status === 'ACTIVE' && isRetiredFactorType(f.factor_type));
}

/**
 * What the enrollment page tells a user whose only methods are retired: why they are here and that
 * the old method is not offered any more.
 */
export function retiredOnlyNotice(retired: readonly FactorRow[], policy: Pick<PolicyConfig, 'retiredFactorsDate'>) {
  const types = [...new Set(retired.map((f) => f.factor_type))].filter(isRetiredFactorType).map(retiredTypeName);
  const what = types.join(' and ');
  return `${what} authentication was retired on ${policy.retiredFactorsDate}, and it was your only sign-in method. Set up a current method now to continue.`;
}

/** E.164 (ITU-T E.164: `+`, country code, at most 15 digits in all). */
export function parseE164(value: string): string | undefined {
  const v = value.trim();
  return /^\+[1-9]\d{6,14}$/.test(v) ? v : undefined;
}

/** A phone number as lists show it: `+1 ••• ••• 0100` style, the last four digits only. */
export function maskPhone(e164: string): string {
  return `${e164.slice(0, 2)}•••${e164.slice(-4)}`;
}
