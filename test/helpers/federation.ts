import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as xmllint from '@authenio/samlify-node-xmllint';
import Provider from 'oidc-provider';
import * as samlify from 'samlify';
import type { App } from '../../src/accounts/model.ts';
import type { UserRow } from '../../src/accounts/repository.ts';
import { CLI_PRINCIPAL, createAdminServiceFor } from '../../src/admin/service.ts';
import type { EnvironmentRuntime } from '../../src/app.ts';
import type { Browser } from './browser.ts';

/**
 * The firm's SAML identity provider in tests: samlify in the IdP role (a library independent of
 * our node-saml SP), its key and certificate made by the openssl CLI, every message checked
 * against the SAML schemas with xmllint.
 */
samlify.setSchemaValidator({ validate: validateQuietly });

/**
 * xmllint compiled with emscripten runs as a whole program per call, and on exit it adds an
 * `uncaughtException` listener to the process and a `drain` listener on stdout that calls
 * `process.exit`, and prints a line: left alone, a test file that validates a dozen messages warns
 * of a listener leak and could have its worker exit. The call is synchronous, so what it adds is
 * taken back at once.
 */
function validateQuietly(xml: string): Promise<unknown> {
  const exceptionListeners = new Set(process.listeners('uncaughtException'));
  const drainListeners = new Set(process.stdout.listeners('drain'));
  const log = console.log;
  console.log = () => undefined;
  try {
    return xmllint.validate(xml);
  } finally {
    console.log = log;
    for (const l of process.listeners('uncaughtException')) {
      if (!exceptionListeners.has(l)) process.off('uncaughtException', l);
    }
    for (const l of process.stdout.listeners('drain')) {
      if (!drainListeners.has(l)) process.stdout.off('drain', l as () => void);
    }
  }
}

export interface KeyAndCertificate {
  privateKeyPem: string;
  certificatePem: string;
}

/** An RSA key and self-signed certificate from `openssl req -x509` (independent of our builder). */
export function opensslKeyAndCertificate(cn: string): KeyAndCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'traqs-idp-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-sha256',
        '-days',
        '30',
        '-subj',
        `/CN=${cn}`,
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return {
      privateKeyPem: readFileSync(join(dir, 'key.pem'), 'utf8'),
      certificatePem: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const EMAIL_FORMAT = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';
export const PASSWORD_CLASS = 'urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport';
export const MFA_CLASS = 'http://schemas.microsoft.com/claims/multipleauthn';

/** samlify's default response with an AuthnStatement whose class is a tag of its own. */
const RESPONSE_TEMPLATE =
  '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{ID}" Version="2.0" IssueInstant="{IssueInstant}" Destination="{Destination}" InResponseTo="{InResponseTo}"><saml:Issuer>{Issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value="{StatusCode}"/></samlp:Status><saml:Assertion xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{AssertionID}" Version="2.0" IssueInstant="{IssueInstant}"><saml:Issuer>{Issuer}</saml:Issuer><saml:Subject><saml:NameID Format="{NameIDFormat}">{NameID}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="{SubjectConfirmationDataNotOnOrAfter}" Recipient="{SubjectRecipient}" InResponseTo="{InResponseTo}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{ConditionsNotBefore}" NotOnOrAfter="{ConditionsNotOnOrAfter}"><saml:AudienceRestriction><saml:Audience>{Audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{IssueInstant}" SessionIndex="{AssertionID}"><saml:AuthnContext><saml:AuthnContextClassRef>{AuthnContextClassRef}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement></saml:Assertion></samlp:Response>';

/** What a test may change in a response: the NameID, the class, times, audience, InResponseTo. */
export interface ResponseOptions {
  nameId: string;
  classRef?: string;
  /** The moment the assertion claims to be issued (default now); its validity is 5 minutes after. */
  issuedAt?: number;
  audience?: string;
  inResponseTo?: string;
  assertionId?: string;
  /** SubjectConfirmationData Recipient (default our ACS URL). */
  recipient?: string;
}

export interface TestSamlIdp {
  entityId: string;
  ssoUrl: string;
  /** Our metadata of this IdP, as a firm would hand it over. */
  metadataXml: string;
  /**
   * Reads our AuthnRequest from the redirect URL (verifying its signature against the SP
   * metadata and the schema) and answers it with a signed response: the base64 `SAMLResponse`
   * and the ACS URL to POST it to.
   */
  respond(
    spMetadataXml: string,
    redirectUrl: string,
    options: ResponseOptions,
  ): Promise<{ samlResponse: string; acsUrl: string; requestId: string }>;
  /** The same, signed with another key than the one in the metadata (a forged response). */
  withKey(key: KeyAndCertificate): TestSamlIdp;
}

export function createTestSamlIdp(
  entityId: string,
  ssoUrl: string,
  key = opensslKeyAndCertificate('test idp'),
): TestSamlIdp {
  const make = (signingKey: KeyAndCertificate) =>
    samlify.IdentityProvider({
      entityID: entityId,
      privateKey: signingKey.privateKeyPem,
      signingCert: signingKey.certificatePem,
      wantAuthnRequestsSigned: true,
      nameIDFormat: [EMAIL_FORMAT],
      singleSignOnService: [{ Binding: samlify.Constants.namespace.binding.redirect, Location: ssoUrl }],
      loginResponseTemplate: { context: RESPONSE_TEMPLATE, attributes: [] },
    });
  const published = make(key);

  function build(signing: ReturnType<typeof make>): TestSamlIdp {
    return {
      entityId,
      ssoUrl,
      metadataXml: published.getMetadata(),
      async respond(spMetadataXml, redirectUrl, options) {
        const sp = samlify.ServiceProvider({ metadata: spMetadataXml });
        const url = new URL(redirectUrl);
        // SAML Bindings §3.4.4.1: the signature covers the query string as sent, without Signature.
        const octetString = url.search
          .slice(1)
          .split('&')
          .filter((p) => !p.startsWith('Signature='))
          .join('&');
        const query = Object.fromEntries(url.searchParams);
        // Verified against the published key: the SP's request signature, not ours.
        const parsed = await published.parseLoginRequest(sp, 'redirect', { query, octetString });
        const requestId = String((parsed.extract as { request?: { id?: string } }).request?.id ?? '');
        const acsUrl = sp.entityMeta.getAssertionConsumerService('post') as string;
        const issued = options.issuedAt ?? Date.now();
        const until = new Date(issued + 5 * 60_000).toISOString();
        const id = `_${randomBytes(16).toString('hex')}`;
        const result = await signing.createLoginResponse(
          sp,
          parsed as unknown as Parameters<typeof signing.createLoginResponse>[1],
          'post',
          { email: options.nameId },
          (template: string) => ({
            id,
            context: samlify.SamlLib.replaceTagsByValue(template, {
              ID: id,
              AssertionID: options.assertionId ?? `_${randomBytes(16).toString('hex')}`,
              Destination: acsUrl,
              Audience: options.audience ?? sp.entityMeta.getEntityID(),
              SubjectRecipient: options.recipient ?? acsUrl,
              Issuer: entityId,
              IssueInstant: new Date(issued).toISOString(),
              StatusCode: 'urn:oasis:names:tc:SAML:2.0:status:Success',
              ConditionsNotBefore: new Date(issued).toISOString(),
              ConditionsNotOnOrAfter: until,
              SubjectConfirmationDataNotOnOrAfter: until,
              NameIDFormat: EMAIL_FORMAT,
              NameID: options.nameId,
              InResponseTo: options.inResponseTo ?? requestId,
              AuthnContextClassRef: options.classRef ?? PASSWORD_CLASS,
            }),
          }),
        );
        return { samlResponse: (result as { context: string }).context, acsUrl, requestId };
      },
      withKey(other) {
        return build(make(other));
      },
    };
  }
  return build(published);
}

/**
 * The firm's OpenID provider in tests: a separate oidc-provider instance on `port`, with its
 * development login pages (any login becomes the subject and the verified email) and the given
 * confidential clients (client_secret_basic, code flow).
 */
export async function startTestOpenIdProvider(
  port: number,
  clients: { clientId: string; secret: string; redirectUri: string }[],
  /** RFC 8176 `amr` the OP reports for a login (in its ID token), e.g. `['pwd', 'otp', 'mfa']`. */
  amrOf: (login: string) => string[] | undefined = () => undefined,
): Promise<{ issuer: string; close(): Promise<void> }> {
  const issuer = `http://localhost:${port}`;
  const op = new Provider(issuer, {
    clients: clients.map((c) => ({
      client_id: c.clientId,
      client_secret: c.secret,
      redirect_uris: [c.redirectUri],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    findAccount: async (_ctx: unknown, id: string) => ({
      accountId: id,
      claims: async () => ({ sub: id, email: id, email_verified: true }),
    }),
    claims: { openid: ['sub', 'amr'], email: ['email', 'email_verified'] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    features: { devInteractions: { enabled: true } },
  });
  // oidc-provider puts in its ID token the `amr` of the sign-in's result: its development login
  // pages record none, so the result is given the one this test OP reports for the login.
  const finished = op.interactionFinished.bind(op);
  op.interactionFinished = (req, res, result, options) => {
    const amr = result.login ? amrOf(result.login.accountId) : undefined;
    return finished(req, res, amr && result.login ? { ...result, login: { ...result.login, amr } } : result, options);
  };
  const server = createServer(op.callback());
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { issuer, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Adds a SAML configuration for `firmId` from the test IdP's metadata; throws if refused. */
export async function addSamlIdp(rt: EnvironmentRuntime, firmId: string, idp: TestSamlIdp, name = 'Acme') {
  const added = await rt.federation.add({ protocol: 'saml', firmId, name, metadataXml: idp.metadataXml });
  if (!added.ok) throw new Error(added.detail);
  return added.value;
}

/** Provisions a user and has support switch them to federated sign-in (as `traqs user auth-mode`). */
export async function provisionFederatedUser(
  rt: EnvironmentRuntime,
  user: { email: string; firmId: string; apps?: App[] },
): Promise<UserRow> {
  const made = await rt.accounts.provisionUser({ firstName: 'Fed', lastName: 'User', ...user });
  if (!made.ok) throw new Error(made.message);
  const switched = await createAdminServiceFor(rt).setAuthMode(CLI_PRINCIPAL, made.user.id, 'federated');
  if (!switched.ok) throw new Error(switched.message);
  return made.user;
}

/** Submits the sign-in form for a federated user; returns the IdP URL of the page it answers with. */
export async function startFederatedSignIn(browser: Browser, username: string, password = 'anything at all') {
  const res = await browser.submit('/signin', '/signin', { username, password });
  if (res.statusCode !== 200 || !res.payload.includes("Continue to your firm's sign-in")) {
    throw new Error(`not sent to the IdP: ${res.statusCode} ${res.payload.slice(0, 300)}`);
  }
  const href = /<a class="button" href="([^"]+)" data-auto-follow/.exec(res.payload)?.[1];
  if (!href) throw new Error('no link to the IdP');
  return href.replace(/&amp;/g, '&');
}

/**
 * The SAML round trip: `username` at the sign-in form, the IdP's signed answer to our AuthnRequest, our ACS of
 * configuration `acsId`. Returns the ACS answer, the IdP's answer and the URL it was sent to.
 */
export async function samlRoundTrip(
  browser: Browser,
  idp: TestSamlIdp,
  spMetadata: string,
  acsId: string,
  username: string,
  options: Partial<ResponseOptions> = {},
) {
  const url = await startFederatedSignIn(browser, username);
  const answer = await idp.respond(spMetadata, url, { nameId: username, ...options });
  const acs = await browser.post(`/sso/saml/${acsId}/acs`, { SAMLResponse: answer.samlResponse });
  return { acs, answer, url };
}
