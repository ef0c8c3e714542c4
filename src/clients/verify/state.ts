import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  type KeyObject,
  randomBytes,
  scryptSync,
} from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * What `traqs-verify` keeps on this machine, in one JSON file readable by the user alone (0600,
 * in a 0700 directory): the idp, the device id and bearer token, the Okta Verify TOTP seed and the
 * P-256 private key — in clear PKCS#8, or sealed with a passphrase (scrypt, then AES-256-GCM).
 */
export interface Enrollment {
  version: 1;
  idpUrl: string;
  deviceId: string;
  deviceToken: string;
  name: string;
  login: string;
  totp: { sharedSecret: string; period: number; digits: number };
  key: { pkcs8: string } | { sealed: SealedKey };
}

interface SealedKey {
  kdf: 'scrypt';
  /** scrypt cost parameters (RFC 7914); N = 2^15 costs about 32 MiB and 0.1 s. */
  N: number;
  r: number;
  p: number;
  salt: string;
  iv: string;
  ciphertext: string;
  tag: string;
}

const FILE = 'enrollment.json';

/** `--home`, else `TRAQS_VERIFY_HOME`, else `~/.traqs-verify`. */
export function stateDir(option: string | undefined, env: NodeJS.ProcessEnv): string {
  return option ?? env.TRAQS_VERIFY_HOME ?? join(env.HOME ?? homedir(), '.traqs-verify');
}

function deriveKey(passphrase: string, salt: Buffer, p: { N: number; r: number; p: number }): Buffer {
  return scryptSync(passphrase.normalize('NFKC'), salt, 32, { N: p.N, r: p.r, p: p.p, maxmem: 128 * p.N * p.r * 2 });
}

/** The private key as stored: PKCS#8 PEM, sealed when a passphrase is given. */
export function protectKey(privateKey: KeyObject, passphrase: string | undefined): Enrollment['key'] {
  const pkcs8 = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  if (!passphrase) return { pkcs8 };
  const params = { N: 2 ** 15, r: 8, p: 1 };
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(passphrase, salt, params), iv);
  const ciphertext = Buffer.concat([cipher.update(pkcs8, 'utf8'), cipher.final()]);
  return {
    sealed: {
      kdf: 'scrypt',
      ...params,
      salt: salt.toString('base64url'),
      iv: iv.toString('base64url'),
      ciphertext: ciphertext.toString('base64url'),
      tag: cipher.getAuthTag().toString('base64url'),
    },
  };
}

/** The private key, opened with the passphrase when it is sealed; throws a user-facing message. */
export function openKey(key: Enrollment['key'], passphrase: string | undefined): KeyObject {
  if ('pkcs8' in key) return createPrivateKey(key.pkcs8);
  if (!passphrase) {
    throw new Error(
      'The device key is protected by a passphrase: pass --passphrase-file or set TRAQS_VERIFY_PASSPHRASE.',
    );
  }
  const s = key.sealed;
  try {
    const decipher = createDecipheriv(
      'aes-256-gcm',
      deriveKey(passphrase, Buffer.from(s.salt, 'base64url'), s),
      Buffer.from(s.iv, 'base64url'),
    );
    decipher.setAuthTag(Buffer.from(s.tag, 'base64url'));
    const pem = Buffer.concat([decipher.update(Buffer.from(s.ciphertext, 'base64url')), decipher.final()]);
    return createPrivateKey(pem.toString('utf8'));
  } catch {
    throw new Error('Wrong passphrase for the device key.');
  }
}

export function loadEnrollment(dir: string): Enrollment | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, FILE), 'utf8');
  } catch {
    return undefined;
  }
  const value = JSON.parse(text) as Enrollment;
  if (value.version !== 1) throw new Error(`Unrecognised enrollment file in ${dir}`);
  return value;
}

/** Written to a temporary file (0600 from creation) and renamed: never half a file, never readable by others. */
export function saveEnrollment(dir: string, enrollment: Enrollment): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const tmp = join(dir, `${FILE}.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(enrollment, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, join(dir, FILE));
}

export function removeEnrollment(dir: string): void {
  rmSync(join(dir, FILE), { force: true });
}
