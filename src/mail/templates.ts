import type { ContactsConfig, EnvironmentConfig } from '../config/schema.ts';

/** What one template produces: the three parts of a message, ready for the outbox. */
export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

/** What every template needs besides its own data. */
export interface EmailContext {
  environment: Pick<EnvironmentConfig, 'label' | 'kind'>;
  contacts: ContactsConfig;
  /** IANA time zone dates are written in; UTC when absent, and the zone is always named. */
  timeZone?: string;
}

/** An account event the user did not necessarily cause: where and how it happened. */
export interface AccountActivity {
  firstName: string;
  /** When it happened, epoch milliseconds. */
  at: number;
  ip: string;
  /** The browser or client, usually the User-Agent header as received. */
  browser: string;
  /** Single-use "this wasn't me" link (7 days) that files a suspicious-activity report. */
  reportUrl?: string;
}

/**
 * Why an enrollment email goes out: a new account (the default), an account that is set up again
 * after a deactivation, or one switched from federated to local sign-in.
 */
export type EnrollmentOccasion = 'new' | 'reactivated' | 'switched-to-local';

/** Who at the operator did something to an account, as the email names them. */
export type AdminTeam = 'operations' | 'support';

/** An account change made by an administrator: when, and which team to contact about it. */
export interface AdminChange {
  firstName: string;
  /** When it happened, epoch milliseconds. */
  at: number;
  by: AdminTeam;
}

/** The data of each template, by name. */
export interface TemplateData {
  /** Sent when an account is created: the one-time activation link. */
  enrollment: {
    /** Default `new`. */
    occasion?: EnrollmentOccasion;
    firstName: string;
    username: string;
    /** The activation link; must be http(s). It carries a bearer secret. */
    activationUrl: string;
    /** When the link stops working, epoch milliseconds. */
    expiresAt: number;
    /** How long the link is valid, in days (FAQ: 30). */
    validDays: number;
  };
  /** Account-activity notice: a sign-in method was added. */
  factorEnrolled: AccountActivity & {
    /** Human-readable, e.g. "Authenticator app (TOTP)". */
    method: string;
  };
  /** Account-activity notice: the password was changed or reset. */
  passwordChanged: AccountActivity;
  /** The account was locked after too many failed attempts. */
  accountLocked: AccountActivity & {
    /** Single-use unlock link (8 hours); absent when only support can unlock. */
    unlockUrl?: string;
    unlockUrlExpiresAt?: number;
    /** When the account unlocks by itself; absent when automatic unlock has stopped. */
    autoUnlockAt?: number;
  };
  /** Self-service recovery: the link to reset the password or unlock the account. */
  recovery: {
    firstName: string;
    kind: 'password' | 'unlock';
    url: string;
    expiresAt: number;
    validHours: number;
  };
  /** Account-activity notice: the account was unlocked through self-service recovery. */
  accountUnlocked: AccountActivity;
  /** Account-activity notice: a sign-in method was removed. */
  factorRemoved: AccountActivity & { method: string };
  /** Account-activity notice: the recovery question was changed. */
  recoveryQuestionChanged: AccountActivity;
  /** Account-activity notice: a sign-in from a browser not seen before for this user. */
  newSignIn: AccountActivity & { method: string };
  /**
   * Account-activity notice: a FastPass sign-in was refused because the authenticator's signature
   * counter went backwards, a sign that the credential may have been copied (WebAuthn §7.2).
   */
  signCounterRegressed: AccountActivity & { method: string };
  /** Account-activity notice: a refresh token for programmatic access was issued (DESIGN "API access"). */
  refreshTokenIssued: AccountActivity & {
    /** The label the user gave the token, shown on the Programmatic page. */
    label: string;
    /** When the token stops working, epoch milliseconds. */
    expiresAt: number;
    /** The Programmatic page (API menu of the TRAQS website), where tokens are listed and revoked. */
    programmaticUrl: string;
  };
  /** Sent once, some days before a refresh token expires (FAQ: 15 days). */
  refreshTokenExpiring: {
    firstName: string;
    label: string;
    createdAt: number;
    expiresAt: number;
    /** Epoch milliseconds; null when the token was never used. */
    lastUsedAt: number | null;
    /** The Programmatic page, where a new token is obtained. */
    programmaticUrl: string;
  };
  /** Operations suspended the account: no sign-in, no programmatic access until unsuspended. */
  accountSuspended: AdminChange;
  /** Operations lifted a suspension. */
  accountUnsuspended: AdminChange;
  /** Operations deactivated the account (for good, unless it is set up again). */
  accountDeactivated: AdminChange;
  /** Support or Operations unlocked a locked account. */
  accountUnlockedByAdmin: AdminChange;
  /** Support removed one or all sign-in methods (a lost device). */
  factorsReset: AdminChange & {
    /** Human-readable names of what was removed, e.g. "Google Authenticator". */
    methods: string[];
    /** Every method was removed: a new one is set up at the next sign-in. */
    all: boolean;
  };
  /** Support sent a password-reset link at the user's request (support never sees a password). */
  passwordResetBySupport: {
    firstName: string;
    url: string;
    expiresAt: number;
    validHours: number;
  };
  /** Support switched the account to the firm's single sign-on (federated). */
  switchedToFederated: AdminChange;
  /** Support gave or took access to an application. */
  appAccessChanged: AdminChange & {
    /** What the user knows the application as, e.g. "TRAQS website". */
    app: string;
    assigned: boolean;
  };
  /** Support revoked one of the user's refresh tokens for programmatic access. */
  refreshTokenRevokedBySupport: AdminChange & {
    label: string;
    /** The Programmatic page, where a new token is obtained. */
    programmaticUrl: string;
  };
  /** Operations changed the personal information of the account. */
  personalInfoChanged: AdminChange & {
    /** What changed, in words ("First name", "Email address"). */
    fields: string[];
  };
  /** Sent to the SAA who asked: Operations approved or rejected a request. */
  requestDecided: {
    firstName: string;
    kind: 'new_user' | 'deactivate';
    /** Whom the request was about: "Ada Lovelace (ada@firm.example)". */
    subject: string;
    approved: boolean;
    /** The reason Operations gave, if any. */
    reason: string | null;
  };
}

export type TemplateName = keyof TemplateData;

/** The template names, e.g. for validating the `template` column of the outbox. */
export const templateNames: readonly TemplateName[] = [
  'enrollment',
  'factorEnrolled',
  'passwordChanged',
  'accountLocked',
  'recovery',
  'accountUnlocked',
  'factorRemoved',
  'recoveryQuestionChanged',
  'newSignIn',
  'signCounterRegressed',
  'refreshTokenIssued',
  'refreshTokenExpiring',
  'accountSuspended',
  'accountUnsuspended',
  'accountDeactivated',
  'accountUnlockedByAdmin',
  'factorsReset',
  'passwordResetBySupport',
  'switchedToFederated',
  'appAccessChanged',
  'refreshTokenRevokedBySupport',
  'personalInfoChanged',
  'requestDecided',
];

/**
 * Escapes text for HTML element content and quoted attribute values (OWASP XSS Prevention
 * Cheat Sheet, rule 1 and 2: `& < > " '`).
 */
export function escapeHtml(value: string): string {
  return value
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/**
 * Renders one template. Every value that comes from data or configuration is escaped in the
 * HTML part; templates are written as plain text, so nothing in them is trusted markup.
 */
export function renderEmail<T extends TemplateName>(
  template: T,
  data: TemplateData[T],
  ctx: EmailContext,
): RenderedEmail {
  const content = templates[template](data, ctx);
  return compose(content, ctx);
}

/** One paragraph-level piece of a message, rendered to both the text and the HTML part. */
type Block =
  | { kind: 'paragraph'; text: string }
  | { kind: 'action'; label: string; url: string }
  | { kind: 'facts'; rows: readonly (readonly [string, string])[] };

interface Content {
  subject: string;
  heading: string;
  blocks: Block[];
}

type Template<K extends TemplateName> = (data: TemplateData[K], ctx: EmailContext) => Content;

const PRODUCT = 'TRAQS';

const templates: { [K in TemplateName]: Template<K> } = {
  enrollment: (data, ctx) => {
    const c = ctx.contacts;
    const intro =
      data.occasion === 'switched-to-local'
        ? `Your account now signs in with a password and a second sign-in method instead of your firm's single sign-on. Your username is still ${inline(data.username)}.`
        : data.occasion === 'reactivated'
          ? `Your account has been set up again. Your username is ${inline(data.username)}.`
          : `An account has been created for you. Your username is ${inline(data.username)}.`;
    return {
      subject: `Activate your ${PRODUCT} account`,
      heading: `Activate your ${PRODUCT} account`,
      blocks: [
        { kind: 'paragraph', text: greeting(data.firstName) },
        { kind: 'paragraph', text: intro },
        {
          kind: 'paragraph',
          text: 'To activate it, open the link below, choose a password and set up a second sign-in method. The link works once.',
        },
        { kind: 'action', label: 'Activate your account', url: safeUrl(data.activationUrl) },
        {
          kind: 'paragraph',
          text: `You have ${data.validDays} days to activate: the link expires on ${formatDate(data.expiresAt, ctx)}.`,
        },
        {
          kind: 'paragraph',
          text: `If it has expired, contact ${inline(c.operationsName)} at ${inline(c.operationsPhone)} or ${inline(c.operationsEmail)} to have a new one sent.`,
        },
        { kind: 'paragraph', text: 'If you were not expecting this message, you can ignore it.' },
      ],
    };
  },
  factorEnrolled: (data, ctx) => ({
    subject: `A sign-in method was added to your ${PRODUCT} account`,
    heading: 'A sign-in method was added',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      { kind: 'paragraph', text: 'A new sign-in method was added to your account.' },
      { kind: 'facts', rows: [['Method', inline(data.method)], ...activityRows(data, ctx)] },
      ...ifNotYou(ctx, data.reportUrl),
    ],
  }),
  passwordChanged: (data, ctx) => ({
    subject: `Your ${PRODUCT} password was changed`,
    heading: 'Your password was changed',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      { kind: 'paragraph', text: 'The password of your account was changed.' },
      { kind: 'facts', rows: activityRows(data, ctx) },
      ...ifNotYou(ctx, data.reportUrl),
    ],
  }),
  accountLocked: (data, ctx) => {
    const c = ctx.contacts;
    const blocks: Block[] = [
      { kind: 'paragraph', text: greeting(data.firstName) },
      {
        kind: 'paragraph',
        text: 'Your account was locked because of too many failed sign-in attempts (wrong password or wrong code).',
      },
      { kind: 'facts', rows: activityRows(data, ctx) },
    ];
    if (data.autoUnlockAt !== undefined) {
      blocks.push({ kind: 'paragraph', text: `It unlocks by itself at ${formatDate(data.autoUnlockAt, ctx)}.` });
    }
    if (data.unlockUrl) {
      blocks.push(
        {
          kind: 'paragraph',
          text: 'To unlock it now, open this link and answer your recovery question. The link works once.',
        },
        { kind: 'action', label: 'Unlock your account', url: safeUrl(data.unlockUrl) },
      );
      if (data.unlockUrlExpiresAt !== undefined) {
        blocks.push({ kind: 'paragraph', text: `The link expires at ${formatDate(data.unlockUrlExpiresAt, ctx)}.` });
      }
    } else {
      blocks.push({
        kind: 'paragraph',
        text: `The account was locked many times in a row, so it will not unlock by itself. Call ${inline(c.techSupportName)} at ${inline(c.techSupportPhone)} to unlock it.`,
      });
    }
    blocks.push(...ifNotYou(ctx, data.reportUrl));
    return { subject: `Your ${PRODUCT} account is locked`, heading: 'Your account is locked', blocks };
  },
  recovery: (data, ctx) => {
    const c = ctx.contacts;
    const what = data.kind === 'password' ? 'reset your password' : 'unlock your account';
    return {
      subject: data.kind === 'password' ? `Reset your ${PRODUCT} password` : `Unlock your ${PRODUCT} account`,
      heading: data.kind === 'password' ? 'Reset your password' : 'Unlock your account',
      blocks: [
        { kind: 'paragraph', text: greeting(data.firstName) },
        {
          kind: 'paragraph',
          text: `Someone, hopefully you, asked to ${what}. Open the link below and answer your recovery question. The link works once.`,
        },
        {
          kind: 'action',
          label: data.kind === 'password' ? 'Reset your password' : 'Unlock your account',
          url: safeUrl(data.url),
        },
        {
          kind: 'paragraph',
          text: `The link is valid for ${data.validHours} hours, until ${formatDate(data.expiresAt, ctx)}.`,
        },
        {
          kind: 'paragraph',
          text: `If you did not ask for this, you can ignore this message; nothing changes until the link is used. If you keep receiving it, contact ${inline(c.operationsName)} at ${inline(c.operationsPhone)}.`,
        },
      ],
    };
  },
  factorRemoved: (data, ctx) => ({
    subject: `A sign-in method was removed from your ${PRODUCT} account`,
    heading: 'A sign-in method was removed',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      { kind: 'paragraph', text: 'A sign-in method was removed from your account.' },
      { kind: 'facts', rows: [['Method', inline(data.method)], ...activityRows(data, ctx)] },
      ...ifNotYou(ctx, data.reportUrl),
    ],
  }),
  recoveryQuestionChanged: (data, ctx) => ({
    subject: `Your ${PRODUCT} recovery question was changed`,
    heading: 'Your recovery question was changed',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      { kind: 'paragraph', text: 'The recovery question of your account was changed.' },
      { kind: 'facts', rows: activityRows(data, ctx) },
      ...ifNotYou(ctx, data.reportUrl),
    ],
  }),
  newSignIn: (data, ctx) => ({
    subject: `New sign-in to your ${PRODUCT} account`,
    heading: 'New sign-in from a browser we have not seen before',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      { kind: 'paragraph', text: 'Your account was used to sign in from a browser or device we have not seen before.' },
      { kind: 'facts', rows: [['Verified with', inline(data.method)], ...activityRows(data, ctx)] },
      ...ifNotYou(ctx, data.reportUrl),
    ],
  }),
  signCounterRegressed: (data, ctx) => ({
    subject: `A ${PRODUCT} sign-in with FastPass was refused`,
    heading: 'A FastPass sign-in was refused',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      {
        kind: 'paragraph',
        text: 'Someone tried to sign in to your account with FastPass, and we refused it: the device reported a use count lower than one we had already seen. This can mean the FastPass credential was copied to another device.',
      },
      { kind: 'facts', rows: [['Method', inline(data.method)], ...activityRows(data, ctx)] },
      {
        kind: 'paragraph',
        text: `To be safe, sign in to your ${PRODUCT} MFA profile with another method, remove this FastPass method and set it up again.`,
      },
      ...ifNotYou(ctx, data.reportUrl),
    ],
  }),
  refreshTokenIssued: (data, ctx) => ({
    subject: `A ${PRODUCT} refresh token was issued for programmatic access`,
    heading: 'A refresh token was issued for programmatic access',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      {
        kind: 'paragraph',
        text: 'A refresh token for programmatic access (API downloads) was issued for your account. Until it expires, a program holding it can get access tokens and download files in your name without signing in.',
      },
      {
        kind: 'facts',
        rows: [['Label', inline(data.label)], ['Expires', formatDate(data.expiresAt, ctx)], ...activityRows(data, ctx)],
      },
      {
        kind: 'paragraph',
        text: `To revoke it, sign in to the ${PRODUCT} website and open the Programmatic page under the API menu. A revoked token stops working at once.`,
      },
      { kind: 'action', label: 'Open the Programmatic page', url: safeUrl(data.programmaticUrl) },
      ...ifNotYou(ctx, data.reportUrl),
    ],
  }),
  refreshTokenExpiring: (data, ctx) => {
    const c = ctx.contacts;
    const expires = formatDate(data.expiresAt, ctx);
    return {
      subject: `Your ${PRODUCT} refresh token expires on ${formatDay(data.expiresAt, ctx)}`,
      heading: 'Your refresh token expires soon',
      blocks: [
        { kind: 'paragraph', text: greeting(data.firstName) },
        { kind: 'paragraph', text: `Your refresh token for programmatic access expires on ${expires}.` },
        {
          kind: 'facts',
          rows: [
            ['Label', inline(data.label)],
            ['Created', formatDate(data.createdAt, ctx)],
            ['Expires', expires],
            ['Last used', data.lastUsedAt === null ? 'never used' : formatDate(data.lastUsedAt, ctx)],
          ],
        },
        {
          kind: 'paragraph',
          text: 'At that moment it stops working: programs that use it can no longer get access tokens or download files. It cannot be extended.',
        },
        {
          kind: 'paragraph',
          text: `To get a new one, sign in to the ${PRODUCT} website, open the Programmatic page under the API menu and confirm your identity with your second sign-in method. Then put the new token in your programs in place of this one.`,
        },
        { kind: 'action', label: 'Get a new refresh token', url: safeUrl(data.programmaticUrl) },
        {
          kind: 'paragraph',
          text: 'If you will not be available, another user at your firm with API access can get a refresh token. If you no longer need this one, there is nothing to do.',
        },
        { kind: 'paragraph', text: `Questions about the API: ${inline(c.apiQuestionsEmail)}.` },
      ],
    };
  },
  accountUnlocked: (data, ctx) => ({
    subject: `Your ${PRODUCT} account was unlocked`,
    heading: 'Your account was unlocked',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      { kind: 'paragraph', text: 'Your account was unlocked with the link we emailed and your recovery question.' },
      { kind: 'facts', rows: activityRows(data, ctx) },
      ...ifNotYou(ctx, data.reportUrl),
    ],
  }),
  accountSuspended: (data, ctx) => ({
    subject: `Your ${PRODUCT} account was suspended`,
    heading: 'Your account was suspended',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      {
        kind: 'paragraph',
        text: `${teamName(data.by, ctx)} suspended your account. You are signed out everywhere and cannot sign in until the suspension is lifted. Refresh tokens for programmatic access were revoked: programs that used them can no longer download files.`,
      },
      { kind: 'facts', rows: [['When', formatDate(data.at, ctx)]] },
      ...askTeam(data.by, ctx, 'To find out why or to have the suspension lifted'),
    ],
  }),
  accountUnsuspended: (data, ctx) => ({
    subject: `Your ${PRODUCT} account is no longer suspended`,
    heading: 'Your account is no longer suspended',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      {
        kind: 'paragraph',
        text: `${teamName(data.by, ctx)} lifted the suspension of your account: you can sign in again. Programmatic access needs a new refresh token from the Programmatic page.`,
      },
      { kind: 'facts', rows: [['When', formatDate(data.at, ctx)]] },
      ...askTeam(data.by, ctx, 'If you did not expect this'),
    ],
  }),
  accountDeactivated: (data, ctx) => ({
    subject: `Your ${PRODUCT} account was deactivated`,
    heading: 'Your account was deactivated',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      {
        kind: 'paragraph',
        text: `${teamName(data.by, ctx)} deactivated your account at your firm's request. You are signed out everywhere, you can no longer sign in, and refresh tokens for programmatic access no longer work.`,
      },
      { kind: 'facts', rows: [['When', formatDate(data.at, ctx)]] },
      ...askTeam(
        data.by,
        ctx,
        "If you still need access, ask your firm's Super Account Administrator to request it; for questions",
      ),
    ],
  }),
  accountUnlockedByAdmin: (data, ctx) => ({
    subject: `Your ${PRODUCT} account was unlocked`,
    heading: 'Your account was unlocked',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      {
        kind: 'paragraph',
        text: `${teamName(data.by, ctx)} unlocked your account. You can sign in again with your password and your second sign-in method.`,
      },
      { kind: 'facts', rows: [['When', formatDate(data.at, ctx)]] },
      ...askTeam(data.by, ctx, 'If you did not ask for this'),
    ],
  }),
  factorsReset: (data, ctx) => ({
    subject: data.all
      ? `The sign-in methods of your ${PRODUCT} account were reset`
      : `A sign-in method was removed from your ${PRODUCT} account`,
    heading: data.all ? 'Your sign-in methods were reset' : 'A sign-in method was removed',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      {
        kind: 'paragraph',
        text: data.all
          ? `${teamName(data.by, ctx)} removed every sign-in method from your account (for example after a lost device). At your next sign-in, after your password, you will be asked to set up a sign-in method again.`
          : `${teamName(data.by, ctx)} removed a sign-in method from your account (for example after a lost device). Your other methods keep working.`,
      },
      {
        kind: 'facts',
        rows: [
          ['Removed', data.methods.map((m) => inline(m)).join(', ') || 'none'],
          ['When', formatDate(data.at, ctx)],
        ],
      },
      {
        kind: 'paragraph',
        text: 'We recommend setting up more than one method, so that losing one device does not lock you out.',
      },
      ...askTeam(data.by, ctx, 'If you did not ask for this'),
    ],
  }),
  passwordResetBySupport: (data, ctx) => {
    const c = ctx.contacts;
    return {
      subject: `Reset your ${PRODUCT} password`,
      heading: 'Reset your password',
      blocks: [
        { kind: 'paragraph', text: greeting(data.firstName) },
        {
          kind: 'paragraph',
          text: `${inline(c.techSupportName)} sent you this link to reset your password. Open it, answer your recovery question and choose a new password. The link works once. Nobody at support sees or chooses your password.`,
        },
        { kind: 'action', label: 'Reset your password', url: safeUrl(data.url) },
        {
          kind: 'paragraph',
          text: `The link is valid for ${data.validHours} hours, until ${formatDate(data.expiresAt, ctx)}.`,
        },
        {
          kind: 'paragraph',
          text: `If you did not ask for this, you can ignore this message: nothing changes until the link is used. Tell ${inline(c.operationsName)} at ${inline(c.operationsPhone)} or ${inline(c.operationsEmail)}.`,
        },
      ],
    };
  },
  switchedToFederated: (data, ctx) => ({
    subject: `Your ${PRODUCT} account now uses your firm's single sign-on`,
    heading: "Your account now uses your firm's single sign-on",
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      {
        kind: 'paragraph',
        text: `${teamName(data.by, ctx)} switched your account to federated single sign-on: from now on you sign in through your firm's identity provider. Your ${PRODUCT} password and sign-in methods were removed, you were signed out everywhere, and refresh tokens for programmatic access were revoked.`,
      },
      { kind: 'facts', rows: [['When', formatDate(data.at, ctx)]] },
      {
        kind: 'paragraph',
        text: "For problems signing in through your firm's identity provider, contact your firm's Identity and Access Management team.",
      },
      ...askTeam(data.by, ctx, 'If you did not ask for this'),
    ],
  }),
  appAccessChanged: (data, ctx) => ({
    subject: data.assigned
      ? `You now have access to ${inline(data.app)}`
      : `Your access to ${inline(data.app)} was removed`,
    heading: data.assigned ? `Access to ${inline(data.app)} granted` : `Access to ${inline(data.app)} removed`,
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      {
        kind: 'paragraph',
        text: data.assigned
          ? `${teamName(data.by, ctx)} gave your account access to ${inline(data.app)}.`
          : `${teamName(data.by, ctx)} removed your account's access to ${inline(data.app)}. Signing in to it now answers "App not assigned".`,
      },
      { kind: 'facts', rows: [['When', formatDate(data.at, ctx)]] },
      ...askTeam(data.by, ctx, 'If you did not expect this'),
    ],
  }),
  refreshTokenRevokedBySupport: (data, ctx) => ({
    subject: `A ${PRODUCT} refresh token of yours was revoked`,
    heading: 'A refresh token was revoked',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      {
        kind: 'paragraph',
        text: `${teamName(data.by, ctx)} revoked one of your refresh tokens for programmatic access. Programs that use it can no longer get access tokens or download files.`,
      },
      {
        kind: 'facts',
        rows: [
          ['Label', inline(data.label)],
          ['When', formatDate(data.at, ctx)],
        ],
      },
      {
        kind: 'paragraph',
        text: `To get a new one, sign in to the ${PRODUCT} website and open the Programmatic page under the API menu.`,
      },
      { kind: 'action', label: 'Open the Programmatic page', url: safeUrl(data.programmaticUrl) },
      ...askTeam(data.by, ctx, 'If you did not expect this'),
    ],
  }),
  personalInfoChanged: (data, ctx) => ({
    subject: `The personal information of your ${PRODUCT} account was changed`,
    heading: 'Your personal information was changed',
    blocks: [
      { kind: 'paragraph', text: greeting(data.firstName) },
      { kind: 'paragraph', text: `${teamName(data.by, ctx)} changed the personal information of your account.` },
      {
        kind: 'facts',
        rows: [
          ['Changed', data.fields.map((f) => inline(f)).join(', ')],
          ['When', formatDate(data.at, ctx)],
        ],
      },
      ...askTeam(data.by, ctx, 'If you did not ask for this'),
    ],
  }),
  requestDecided: (data, ctx) => {
    const what = data.kind === 'new_user' ? 'new username' : 'deactivation';
    const outcome = data.approved ? 'approved' : 'rejected';
    const blocks: Block[] = [
      { kind: 'paragraph', text: greeting(data.firstName) },
      {
        kind: 'paragraph',
        text: `${inline(ctx.contacts.operationsName)} ${outcome} your request for a ${what}.`,
      },
      {
        kind: 'facts',
        rows: [
          ['Request', data.kind === 'new_user' ? 'New username' : 'Deactivation'],
          ['For', inline(data.subject)],
          ['Outcome', data.approved ? 'Approved' : 'Rejected'],
          ...(data.reason ? ([['Reason', inline(data.reason, 500)]] as [string, string][]) : []),
        ],
      },
    ];
    if (data.approved && data.kind === 'new_user') {
      blocks.push({
        kind: 'paragraph',
        text: 'The new user has been sent an enrollment email; the link in it is valid for a limited time.',
      });
    }
    blocks.push(...askTeam('operations', ctx, 'Questions about this request'));
    return { subject: `Your ${PRODUCT} ${what} request was ${outcome}`, heading: `Request ${outcome}`, blocks };
  },
};

/** The team an email names as having made a change. */
function teamName(by: AdminTeam, ctx: EmailContext): string {
  return inline(by === 'support' ? ctx.contacts.techSupportName : ctx.contacts.operationsName);
}

/** Whom to call about a change an administrator made. */
function askTeam(by: AdminTeam, ctx: EmailContext, lead: string): Block[] {
  const c = ctx.contacts;
  const contact =
    by === 'support'
      ? `${inline(c.techSupportName)} at ${inline(c.techSupportPhone)}`
      : `${inline(c.operationsName)} at ${inline(c.operationsPhone)} or ${inline(c.operationsEmail)}`;
  return [{ kind: 'paragraph', text: `${lead}, contact ${contact}.` }];
}

function greeting(firstName: string): string {
  const name = inline(firstName);
  return name ? `Hello ${name},` : 'Hello,';
}

function activityRows(data: AccountActivity, ctx: EmailContext): [string, string][] {
  return [
    ['When', formatDate(data.at, ctx)],
    ['IP address', inline(data.ip) || 'unknown'],
    ['Browser', inline(data.browser) || 'unknown'],
  ];
}

function ifNotYou(ctx: EmailContext, reportUrl?: string): Block[] {
  const c = ctx.contacts;
  const report: Block[] = reportUrl
    ? [
        {
          kind: 'paragraph',
          text: "If this wasn't you, report it now: we sign you out everywhere and Operations looks into it.",
        },
        { kind: 'action', label: "This wasn't me", url: safeUrl(reportUrl) },
      ]
    : [];
  return [
    { kind: 'paragraph', text: 'If this was you, there is nothing more to do.' },
    ...report,
    {
      kind: 'paragraph',
      text: `If this wasn't you, someone else may have access to your account: contact ${inline(c.operationsName)} right away at ${inline(c.operationsPhone)} or ${inline(c.operationsEmail)}.`,
    },
  ];
}

/**
 * A value placed inside a sentence. Control characters and line breaks are flattened and the
 * length capped, so a crafted User-Agent or name cannot add lines that look like our own text.
 */
function inline(value: string, max = 200): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
  const flat = value.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** Only http(s) links go into a message: a `javascript:` or `data:` URL must never become a button. */
function safeUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new Error(`Refusing a ${parsed.protocol} link in an email`);
  }
  return parsed.href;
}

function formatDate(at: number, ctx: EmailContext): string {
  return new Intl.DateTimeFormat('en-US', {
    weekday: 'long',
    year: 'numeric',
    month: 'long',
    day: 'numeric',
    hour: 'numeric',
    minute: '2-digit',
    timeZone: ctx.timeZone ?? 'UTC',
    timeZoneName: 'short',
  }).format(new Date(at));
}

/** The day alone, e.g. for a subject line: "April 13, 2025", in the same time zone as {@link formatDate}. */
function formatDay(at: number, ctx: EmailContext): string {
  return new Intl.DateTimeFormat('en-US', {
    year: 'numeric',
    month: 'long',
    day: 'numeric',
    timeZone: ctx.timeZone ?? 'UTC',
  }).format(new Date(at));
}

function isTest(ctx: EmailContext): boolean {
  return ctx.environment.kind === 'test';
}

function environmentNote(ctx: EmailContext): string {
  return `This message comes from the ${inline(ctx.environment.label)} test environment, not from production.`;
}

function footerLines(ctx: EmailContext): string[] {
  const c = ctx.contacts;
  return [
    `${inline(c.operationsName)}: ${inline(c.operationsPhone)}, ${inline(c.operationsEmail)}`,
    `${inline(c.techSupportName)}: ${inline(c.techSupportPhone)}`,
    `API questions: ${inline(c.apiQuestionsEmail)}`,
  ];
}

const AUTOMATED = 'This message was sent automatically; replies are not read.';

function compose(content: Content, ctx: EmailContext): RenderedEmail {
  // Test mail must never pass for production mail: the label leads the subject and the body.
  const subject = isTest(ctx) ? `[${inline(ctx.environment.label)} (test)] ${content.subject}` : content.subject;
  return { subject, text: composeText(content, ctx), html: composeHtml(subject, content, ctx) };
}

function composeText(content: Content, ctx: EmailContext): string {
  const parts: string[] = [];
  if (isTest(ctx)) parts.push(environmentNote(ctx));
  for (const block of content.blocks) {
    if (block.kind === 'paragraph') parts.push(block.text);
    // The URL on a line of its own, so mail clients make all of it clickable.
    else if (block.kind === 'action') parts.push(`${block.label}:\n${block.url}`);
    else parts.push(block.rows.map(([label, value]) => `${label}: ${value}`).join('\n'));
  }
  parts.push(['Need help?', ...footerLines(ctx), '', AUTOMATED].join('\n'));
  return `${parts.join('\n\n')}\n`;
}

// Inline styles only: most email clients drop <style> blocks. Colours meet WCAG 2.2 AA contrast.
const FONT = 'font-family:Arial,Helvetica,sans-serif;';
const LINK = 'color:#0b5cad;';

function composeHtml(subject: string, content: Content, ctx: EmailContext): string {
  const body = content.blocks.map(blockHtml).join('\n');
  const banner = isTest(ctx)
    ? `<tr><td style="${FONT}padding:12px 24px;background-color:#fff4ce;color:#3d2e00;font-size:14px;border-bottom:1px solid #e0c463;"><strong>${escapeHtml(
        `${inline(ctx.environment.label)} (test)`,
      )}</strong>: ${escapeHtml(environmentNote(ctx))}</td></tr>`
    : '';
  const footer = footerLines(ctx)
    .map((line) => escapeHtml(line))
    .join('<br>');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>${escapeHtml(subject)}</title>
</head>
<body style="margin:0;padding:0;background-color:#f3f4f6;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background-color:#f3f4f6;">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="max-width:600px;background-color:#ffffff;border:1px solid #d1d5db;">
${banner}
<tr><td style="${FONT}padding:24px;font-size:16px;line-height:1.5;color:#1f2328;">
<h1 style="${FONT}margin:0 0 16px;font-size:22px;line-height:1.3;color:#1f2328;">${escapeHtml(content.heading)}</h1>
${body}
</td></tr>
<tr><td style="${FONT}padding:16px 24px;border-top:1px solid #d1d5db;font-size:14px;line-height:1.5;color:#4b5563;">
<p style="margin:0 0 8px;"><strong>Need help?</strong><br>${footer}</p>
<p style="margin:0;">${escapeHtml(AUTOMATED)}</p>
</td></tr>
</table>
</td></tr>
</table>
</body>
</html>
`;
}

function blockHtml(block: Block): string {
  if (block.kind === 'paragraph') return `<p style="margin:0 0 16px;">${escapeHtml(block.text)}</p>`;
  if (block.kind === 'action') {
    const href = escapeHtml(block.url);
    return `<p style="margin:24px 0;"><a href="${href}" style="${FONT}display:inline-block;padding:12px 20px;background-color:#0b5cad;color:#ffffff;font-weight:bold;text-decoration:none;border-radius:4px;">${escapeHtml(
      block.label,
    )}</a></p>
<p style="margin:0 0 16px;font-size:14px;">If the button does not work, copy this address into your browser:<br><a href="${href}" style="${LINK}word-break:break-all;">${href}</a></p>`;
  }
  const rows = block.rows
    .map(
      ([label, value]) =>
        `<tr><th scope="row" style="${FONT}text-align:left;vertical-align:top;padding:4px 16px 4px 0;font-weight:bold;white-space:nowrap;">${escapeHtml(
          label,
        )}</th><td style="${FONT}padding:4px 0;word-break:break-word;">${escapeHtml(value)}</td></tr>`,
    )
    .join('\n');
  return `<table cellpadding="0" cellspacing="0" border="0" style="margin:0 0 16px;font-size:16px;">\n${rows}\n</table>`;
}
