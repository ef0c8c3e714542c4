import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { UserRow } from '../accounts/repository.ts';
import { createSelfSignedCertificate } from './certificate.ts';
import { certificateFingerprint, diffIdpMetadata, MetadataError, parseIdpMetadata, pemOf } from './model.ts';
import { classifySamlError, decideFederatedSignIn, oidcReportsMfa, samlReportsMfa } from './verify.ts';

const user = (over: Partial<UserRow>) =>
  ({ id: 'u1', firm_id: 'firmA', login: 'a@x.example', auth_mode: 'federated', status: 'ACTIVE', ...over }) as UserRow;
const identity = { username: 'a@x.example', mfa: false };

describe('decideFederatedSignIn', () => {
  it('signs in a provisioned, active, federated user of the IdP’s firm with amr fed (+ mfa)', () => {
    expect(decideFederatedSignIn({ idpFirmId: 'firmA', identity, user: user({}) })).toMatchObject({
      ok: true,
      amr: ['fed'],
    });
    expect(
      decideFederatedSignIn({ idpFirmId: 'firmA', identity: { ...identity, mfa: true }, user: user({}) }),
    ).toMatchObject({ ok: true, amr: ['fed', 'mfa'] });
  });
  it.each([
    [{ username: undefined, mfa: false }, user({}), 'no_identity'],
    [identity, undefined, 'user_not_provisioned'],
    [identity, user({ status: 'DEPROVISIONED' }), 'user_not_provisioned'],
    [identity, user({ firm_id: 'firmB' }), 'wrong_firm'],
    [identity, user({ auth_mode: 'local' }), 'not_federated'],
    [identity, user({ status: 'SUSPENDED' }), 'suspended'],
  ] as const)('refuses %o / %o: %s', (id, u, reason) => {
    expect(decideFederatedSignIn({ idpFirmId: 'firmA', identity: id, user: u })).toEqual({ ok: false, reason });
  });
});

describe('MFA reported by the IdP', () => {
  it('SAML AuthnContextClassRef', () => {
    expect(samlReportsMfa(['http://schemas.microsoft.com/claims/multipleauthn'])).toBe(true);
    expect(samlReportsMfa(['urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport'])).toBe(false);
  });
  it('OIDC amr (RFC 8176)', () => {
    expect(oidcReportsMfa(['pwd', 'otp'])).toBe(true);
    expect(oidcReportsMfa(['pwd'])).toBe(false);
    expect(oidcReportsMfa('mfa')).toBe(false);
  });
});

it('classifies node-saml errors', () => {
  expect(classifySamlError('Invalid signature')).toBe('signature_invalid');
  expect(classifySamlError('SAML assertion audience mismatch. Expected: a Received: b')).toBe('audience_mismatch');
  expect(classifySamlError('SAML assertion expired: clocks skewed too much')).toBe('expired');
  expect(classifySamlError('InResponseTo is not valid')).toBe('request_mismatch');
  expect(classifySamlError('something else')).toBe('invalid_response');
});

describe('IdP metadata and our certificate', () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = createSelfSignedCertificate({ publicKey, privateKey, commonName: 'sp', notBefore: 0, validDays: 1 });
  const body = pem.replace(/-----[A-Z ]+-----|\s/g, '');

  it('builds an X.509 v3 certificate that verifies with its own key', () => {
    const cert = new X509Certificate(pem);
    expect(cert.subject).toBe('CN=sp');
    expect(cert.verify(publicKey)).toBe(true);
    expect(cert.validFrom).toContain('1970');
  });

  const metadata = (sso: string, cert: string) =>
    `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example/e"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>${sso}</md:IDPSSODescriptor></md:EntityDescriptor>`;
  const redirect =
    '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example/sso"/>';

  it('reads entity id, redirect SSO URL and signing certificates', () => {
    expect(parseIdpMetadata(metadata(redirect, body))).toMatchObject({
      entityId: 'https://idp.example/e',
      ssoUrl: 'https://idp.example/sso',
      certificates: [expect.stringContaining(body.slice(0, 40))],
    });
  });
  it('refuses metadata without a redirect SSO service, with a broken certificate, or not XML', () => {
    expect(() => parseIdpMetadata(metadata('', body))).toThrow(MetadataError);
    expect(() => parseIdpMetadata(metadata(redirect, 'AAAA'))).toThrow(MetadataError);
    expect(() => parseIdpMetadata('not xml')).toThrow(MetadataError);
  });

  it('compares metadata by certificate fingerprint: a rollover adds one and removes another', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const next = createSelfSignedCertificate({ ...other, commonName: 'next', notBefore: 0, validDays: 1 });
    const was = { ssoUrl: 'https://idp.example/sso', certificates: [pem] };
    // The same certificate wrapped otherwise is no change (SAML Metadata: base64 in ds:X509Certificate).
    expect(diffIdpMetadata(was, { ...was, certificates: [pemOf(body.replace(/(.{76})/g, '$1\n'))] })).toEqual({
      changed: false,
      certificatesAdded: [],
      certificatesRemoved: [],
    });
    expect(diffIdpMetadata(was, { ...was, certificates: [pem, next] })).toMatchObject({
      changed: true,
      certificatesAdded: [certificateFingerprint(next)],
      certificatesRemoved: [],
    });
    expect(
      diffIdpMetadata(was, { ssoUrl: 'https://idp.example/sso2', certificates: [next], metadataSource: 'a.xml' }),
    ).toEqual({
      changed: true,
      ssoUrl: { before: 'https://idp.example/sso', after: 'https://idp.example/sso2' },
      certificatesAdded: [certificateFingerprint(next)],
      certificatesRemoved: [new X509Certificate(pem).fingerprint256],
      metadataSource: { before: null, after: 'a.xml' },
    });
  });
});
