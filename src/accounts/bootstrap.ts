import type { EnvironmentRuntime } from '../app.ts';
import { FACILITY_CODES } from '../refdata/facilities.ts';

export const DEMO_FIRM = 'Demo Securities LLC';

export interface BootstrapResult {
  firmName: string;
  adminEmail: string;
  /** A fresh activation link while the administrator has not activated; undefined after. */
  activationUrl?: string;
  created: boolean;
}

/**
 * First start of an environment: a demo firm and an administrator with an enrollment link. Until
 * the administrator activates, each start issues a new link (the old one stops working), since
 * only the hash of a link is kept and it cannot be shown again.
 */
export async function bootstrapEnvironment(rt: EnvironmentRuntime, adminEmail: string): Promise<BootstrapResult> {
  let firm = await rt.store.repos.firms.findFirmByName(DEMO_FIRM);
  if (!firm) {
    const made = await rt.accounts.createFirm(DEMO_FIRM);
    if (!made.ok) throw new Error(made.message);
    firm = made.firm;
  }
  const existing = await rt.store.repos.users.findUserByLogin(adminEmail);
  if (!existing) {
    const made = await rt.accounts.provisionUser({
      email: adminEmail,
      firstName: 'First',
      lastName: 'Administrator',
      firmId: firm.id,
      roles: ['admin', 'operations', 'support'],
      apps: ['portal', 'download'],
    });
    if (!made.ok) throw new Error(made.message);
    // The first administrator may download every facility's reference data (Manual, Programmatic).
    for (const facility of FACILITY_CODES) {
      await rt.store.repos.refdata.grantEntitlement(made.user.id, facility, rt.clock());
    }
    return { firmName: firm.name, adminEmail, activationUrl: made.activationUrl, created: true };
  }
  if (existing.status === 'PROVISIONED') {
    const link = await rt.accounts.resendEnrollment(existing.id);
    return { firmName: firm.name, adminEmail, activationUrl: link.activationUrl, created: false };
  }
  return { firmName: firm.name, adminEmail, created: false };
}
