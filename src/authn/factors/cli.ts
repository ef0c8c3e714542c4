import { type Command, Option } from 'commander';
import type { PolicyConfig } from '../../config/schema.ts';
import type { Store } from '../../db/store.ts';
import type { Clock, RandomBytes } from '../../lib/tokens.ts';
import { createId } from '../../lib/tokens.ts';
import type { FactorRow } from './repository.ts';
import {
  isRetiredFactorType,
  maskPhone,
  parseE164,
  type RetiredFactorType,
  retiredTypeName,
  retirementLabel,
} from './retired.ts';

/** What the factor commands need of an opened environment (`EnvironmentRuntime` has it). */
export interface FactorCommandRuntime {
  store: Store;
  clock: Clock;
  random: RandomBytes;
  environment: { label: string };
  config: { policy: Readonly<PolicyConfig> };
}

export interface FactorCommandDeps {
  /** Opens the environment `envId` for the command, and always closes it (the CLI's own helper). */
  withEnvironment: <T>(envId: string, work: (rt: FactorCommandRuntime) => Promise<T>) => Promise<T>;
  /** An error the CLI prints without a stack (exit code 2). */
  usageError: (message: string) => Error;
}

export type ImportResult = { ok: true; factor: FactorRow; phone: string } | { ok: false; message: string };

/**
 * Imports an SMS or voice-call enrollment from the previous system, so its owner sees it in the
 * profile, marked retired, and is sent to enroll a current method at the next sign-in (DESIGN,
 * "retired factors"). The same number twice is refused; the import is audited with no actor (the
 * command line).
 */
export async function importRetiredFactor(
  rt: Pick<FactorCommandRuntime, 'store' | 'clock' | 'random'>,
  input: { login: string; type: string; phone: string },
): Promise<ImportResult> {
  if (!isRetiredFactorType(input.type))
    return { ok: false, message: `--type must be sms or call, not "${input.type}"` };
  const type: RetiredFactorType = input.type;
  const phone = parseE164(input.phone);
  if (!phone) {
    return { ok: false, message: `--phone must be an E.164 number such as +12125550100, not "${input.phone}"` };
  }
  const { store, clock, random } = rt;
  const user = await store.repos.users.findUserByLogin(input.login.trim().toLowerCase());
  if (!user) return { ok: false, message: `No user "${input.login}"` };
  const now = clock();
  return store.transaction(async (repos) => {
    const existing = (await repos.factors.listFactors(user.id)).filter((f) => f.factor_type === type);
    if (existing.length) {
      const phones = await repos.factors.listPhoneNumbers(user.id);
      if (existing.some((f) => phones.get(f.id) === phone)) {
        return { ok: false as const, message: `${user.login} already has ${retiredTypeName(type)} ${phone}` };
      }
    }
    const factor: FactorRow = {
      id: createId(type === 'sms' ? 'sms' : 'clf', random),
      user_id: user.id,
      factor_type: type,
      provider: 'OKTA',
      status: 'ACTIVE',
      name: retiredTypeName(type),
      secret_enc: null,
      last_used_step: null,
      created_at: now,
      activated_at: now,
      last_used_at: null,
    };
    await repos.factors.createFactor(factor);
    await repos.factors.setPhoneNumber(factor.id, phone);
    await repos.audit.recordEvent({
      at: now,
      actorId: null,
      action: 'user.mfa.factor.import',
      targetId: user.id,
      outcome: 'success',
      ip: null,
      userAgent: null,
      details: { factorId: factor.id, factorType: type, phone: maskPhone(phone), via: 'cli' },
    });
    return { ok: true as const, factor, phone };
  });
}

/**
 * `traqs factor …`: `factor import --user <email> --type sms|call --phone <E.164>` brings over an
 * enrollment of a retired type for migration.
 */
export function registerFactorCommands(program: Command, deps: FactorCommandDeps): void {
  const factor = program.command('factor').description('Sign-in methods (factors) of users');
  factor
    .command('import')
    .description(
      'Import an SMS or voice-call enrollment (migration). These types are retired (policy.retiredFactorsDate): the profile lists them as retired and sign-in never offers them, so their owners enroll a current method.',
    )
    .addOption(new Option('--env <id>', 'environment: ntf or production').default('ntf'))
    .requiredOption('--user <email>', 'the username')
    .addOption(new Option('--type <type>', 'sms or call').choices(['sms', 'call']).makeOptionMandatory())
    .requiredOption('--phone <number>', 'the phone number in E.164 form, e.g. +12125550100')
    .option('--json', 'print JSON')
    .action(async (opts: { env: string; user: string; type: string; phone: string; json?: boolean }) => {
      await deps.withEnvironment(opts.env, async (rt) => {
        const r = await importRetiredFactor(rt, { login: opts.user, type: opts.type, phone: opts.phone });
        if (!r.ok) throw deps.usageError(r.message);
        const status = retirementLabel(rt.config.policy, rt.clock());
        const view = {
          id: r.factor.id,
          user: opts.user.trim().toLowerCase(),
          factorType: r.factor.factor_type,
          phoneNumber: r.phone,
          status,
        };
        console.log(
          opts.json
            ? JSON.stringify(view, null, 2)
            : `Imported ${retiredTypeName(r.factor.factor_type as RetiredFactorType)} ${maskPhone(r.phone)} for ${view.user} in ${rt.environment.label} (${r.factor.id}); ${status}: sign-in does not offer it.`,
        );
      });
    });
}
