import { z } from 'zod';

/** One HTTP service of a stack (portal, idp or download). */
const serviceSchema = z
  .object({
    port: z.number().int().min(0).max(65535),
    /** The URL users and other services reach this service at; no trailing slash. */
    publicUrl: z
      .string()
      .url()
      .transform((u) => u.replace(/\/+$/, '')),
  })
  .strict();

const environmentSchema = z
  .object({
    id: z.string().regex(/^[a-z][a-z0-9-]{0,30}$/, 'lowercase letters, digits and dashes'),
    label: z.string().min(1).max(60),
    kind: z.enum(['test', 'production']),
    idp: serviceSchema,
    portal: serviceSchema,
    download: serviceSchema,
    /** `postgres://…` selects PostgreSQL; otherwise the SQLite file under `dataDir`. */
    databaseUrl: z.string().min(1).optional(),
    /** 32-byte key-encryption key (base64) for secrets at rest such as TOTP seeds. */
    kek: z.string().optional(),
  })
  .strict();

const contactsSchema = z
  .object({
    operationsName: z.string().default('Market Operations'),
    operationsPhone: z.string().default('1-866-776-0800 option 2'),
    operationsEmail: z.string().default('operations@traqs.example'),
    techSupportName: z.string().default('Technical Support'),
    techSupportPhone: z.string().default('212-231-5180 option 4'),
    apiQuestionsEmail: z.string().default('api-support@traqs.example'),
  })
  .strict();

const policySchema = z
  .object({
    /** NIST 800-63B §3.1.1.2: at least 8, we default to 12; at least 64 must be allowed. */
    passwordMinLength: z.number().int().min(8).default(12),
    passwordMaxLength: z.number().int().min(64).max(1024).default(256),
    activationTtlDays: z.number().positive().default(30),
    sessionIdleMinutes: z.number().positive().default(60),
    sessionAbsoluteHours: z.number().positive().default(12),
    /** Lifetime of an Authentication API transaction (stateToken). */
    transactionMinutes: z.number().positive().default(10),
    totpStepSeconds: z.number().int().positive().default(30),
    /** RFC 6238 §5.2: steps of clock drift accepted on each side. */
    totpDriftSteps: z.number().int().min(0).max(2).default(1),
    /** A push (number challenge) must be answered within this (DESIGN: 5 minutes). */
    pushTimeoutMinutes: z.number().positive().default(5),
    /** Pushes one sign-in may send, the first included (push bombing, OWASP ASVS 6.6.4). */
    pushesPerSignIn: z.number().int().min(1).default(3),
    /** Pushes one user may receive per 10 minutes over all sign-ins and nodes. */
    pushesPerUserPer10Minutes: z.number().int().min(1).default(10),
    /** A push activation code (link and QR code) is valid this long, single use. */
    pushActivationMinutes: z.number().positive().default(10),
    /** Consecutive failed password or factor attempts that lock the account (DESIGN: 5). */
    maxFailedAttempts: z.number().int().min(1).default(5),
    /** A locked account unlocks by itself after this long (FAQ: 15 minutes). */
    lockoutAutoUnlockMinutes: z.number().positive().default(15),
    /** After this many lockouts in a row without a successful sign-in, only support can unlock (Okta's rule). */
    lockoutsBeforeSupportUnlock: z.number().int().min(1).default(10),
    /** Unlock and password-reset links: valid this long, single use (FAQ: 8 hours). */
    recoveryLinkHours: z.number().positive().default(8),
    /**
     * What proves it is the user after the emailed link: TRAQS keeps the recovery question;
     * `factor` asks for an enrolled factor instead, as NIST 800-63B §6.1.2.3 prefers.
     */
    recoveryVerification: z.enum(['question', 'factor']).default('question'),
    /** Access tokens for the download API last this long (FAQ: 60 minutes). */
    accessTokenMinutes: z.number().positive().default(60),
    /** Programmatic refresh tokens last this many calendar months from issue (FAQ: 6 months). */
    refreshTokenMonths: z.number().int().positive().max(24).default(6),
    /** The "your refresh token expires soon" email goes out this many days before expiry, once. */
    refreshTokenReminderDays: z.number().positive().default(15),
    /** `traqs-api` may turn a sign-in into a code only this soon after its second factor. */
    programmaticSignInMaxAgeMinutes: z.number().positive().default(5),
    /** Per-IP limit on sign-in and recovery requests, per minute (OWASP ASVS 2.2.1). */
    authRequestsPerMinutePerIp: z.number().int().positive().default(60),
    /**
     * The day SMS and voice-call factors were retired (`YYYY-MM-DD`, from 00:00 UTC; FAQ: 31 December
     * 2025). They cannot be enrolled; enrollments imported for migration (`traqs factor import`) are
     * shown as retired and never offered at sign-in, and a user with nothing else enrolls a current
     * method after the password.
     */
    retiredFactorsDate: z
      .string()
      .regex(/^\d{4}-\d{2}-\d{2}$/, 'a date as YYYY-MM-DD')
      .refine((d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)), 'a real calendar date')
      .default('2025-12-31'),
  })
  .strict();

const argon2Schema = z
  .object({
    // OWASP Password Storage Cheat Sheet: Argon2id m=19 MiB, t=2, p=1.
    memoryKiB: z.number().int().min(8192).default(19456),
    timeCost: z.number().int().min(1).default(2),
    parallelism: z.number().int().min(1).default(1),
  })
  .strict();

/** What `trustProxy: true` trusts: proxies on this host or a private network. */
export const PRIVATE_PROXIES = 'loopback, linklocal, uniquelocal';

export const configSchema = z
  .object({
    /** `development` allows generated secrets and plain HTTP; `production` refuses them. */
    deployment: z.enum(['development', 'production']).default('development'),
    dataDir: z.string().min(1).default('./data'),
    /** Address the listeners bind to. */
    host: z.string().min(1).default('127.0.0.1'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /**
     * The reverse proxies whose `X-Forwarded-For` (and `-Proto`, `-Host`) are believed: addresses,
     * CIDR ranges or proxy-addr's names (`loopback`, `linklocal`, `uniquelocal`), comma-separated.
     * The client address is the right-most one not among them. `true` means every private address
     * (a proxy on this host or the internal network); `false` ignores the headers. Never "trust
     * all": the left-most entry is whatever the client wrote, and would choose its own rate-limit
     * key and audit address (OWASP ASVS 14.5.3 spirit: do not trust client-supplied headers).
     */
    trustProxy: z
      .union([
        z.boolean(),
        z
          .string()
          .trim()
          .regex(
            /^(?:loopback|linklocal|uniquelocal|[0-9A-Fa-f.:]+(?:\/\d{1,3})?)(?:\s*,\s*(?:loopback|linklocal|uniquelocal|[0-9A-Fa-f.:]+(?:\/\d{1,3})?))*$/,
            'trustProxy: a comma-separated list of proxy addresses, CIDR ranges, loopback, linklocal or uniquelocal; or true / false',
          ),
      ])
      .default(false)
      .transform((v): string | false => (v === true ? PRIVATE_PROXIES : v === false || v === '' ? false : v)),
    /** Serve HTTPS directly (PEM files); otherwise terminate TLS at a reverse proxy (`trustProxy`). */
    tls: z
      .object({ certFile: z.string().min(1), keyFile: z.string().min(1) })
      .strict()
      .optional(),
    environments: z.array(environmentSchema).min(1),
    smtp: z
      .object({
        url: z.string().url().optional(),
        from: z.string().min(3).default('TRAQS MFA <no-reply@traqs.example>'),
      })
      .strict()
      .default({ from: 'TRAQS MFA <no-reply@traqs.example>' }),
    contacts: contactsSchema.default(contactsSchema.parse({})),
    policy: policySchema.default(policySchema.parse({})),
    argon2: argon2Schema.default(argon2Schema.parse({})),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type EnvironmentConfig = Config['environments'][number];
export type ServiceName = 'idp' | 'portal' | 'download';
export type PolicyConfig = Config['policy'];
export type ContactsConfig = Config['contacts'];
