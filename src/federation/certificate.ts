import { createHash, type KeyObject, sign } from 'node:crypto';

/**
 * A self-signed X.509 v3 certificate (RFC 5280) for our SAML SP signing key, built with node:crypto
 * alone: SAML metadata carries keys as certificates (`ds:X509Certificate`, SAML Metadata §2.4.1.1),
 * and IdPs only use the key inside, so self-signed is what SPs publish. DER by hand (X.690).
 */

function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else if (n < 0x100) len = Buffer.from([0x81, n]);
  else if (n < 0x10000) len = Buffer.from([0x82, n >> 8, n & 0xff]);
  else len = Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
const seq = (...c: Buffer[]) => der(0x30, ...c);
const set = (...c: Buffer[]) => der(0x31, ...c);
const nul = () => Buffer.from([0x05, 0x00]);

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes: number[] = [40 * (parts[0] ?? 0) + (parts[1] ?? 0)];
  for (const p of parts.slice(2)) {
    const stack = [p & 0x7f];
    for (let v = p >> 7; v > 0; v >>= 7) stack.unshift((v & 0x7f) | 0x80);
    bytes.push(...stack);
  }
  return der(0x06, Buffer.from(bytes));
}

/** A positive INTEGER from big-endian bytes (a leading zero keeps the sign bit clear). */
function positiveInteger(bytes: Buffer): Buffer {
  return der(0x02, (bytes[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after. */
function time(ms: number): Buffer {
  const iso = new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return Number(iso.slice(0, 4)) < 2050
    ? der(0x17, Buffer.from(`${iso.slice(2)}Z`, 'ascii'))
    : der(0x18, Buffer.from(`${iso}Z`, 'ascii'));
}

const SHA256_WITH_RSA = seq(oid('1.2.840.113549.1.1.11'), nul());

/** Returns the certificate as PEM, signed by `privateKey` over its own public key (RSA, SHA-256). */
export function createSelfSignedCertificate(opts: {
  publicKey: KeyObject;
  privateKey: KeyObject;
  commonName: string;
  notBefore: number;
  validDays: number;
}): string {
  const name = seq(set(seq(oid('2.5.4.3'), der(0x0c, Buffer.from(opts.commonName.slice(0, 64), 'utf8')))));
  const spki = opts.publicKey.export({ type: 'spki', format: 'der' });
  // RFC 5280 §4.1.2.2: a positive serial of at most 20 octets, unique per issuer; 16 bytes derived
  // from the key and the date are unique for a self-signed certificate.
  const serial = createHash('sha256').update(spki).update(String(opts.notBefore)).digest().subarray(0, 16);
  const tbs = seq(
    der(0xa0, der(0x02, Buffer.from([2]))),
    positiveInteger(serial),
    SHA256_WITH_RSA,
    name,
    seq(time(opts.notBefore), time(opts.notBefore + opts.validDays * 86_400_000)),
    name,
    spki,
  );
  const signature = sign('sha256', tbs, opts.privateKey);
  const cert = seq(tbs, SHA256_WITH_RSA, der(0x03, Buffer.from([0]), signature));
  const b64 = cert.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN CERTIFICATE-----\n${b64.trimEnd()}\n-----END CERTIFICATE-----\n`;
}
