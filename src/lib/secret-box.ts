import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * AES-256-GCM envelope for secrets the server must read back (TOTP seeds). Format:
 * `v1.<iv>.<ciphertext>.<tag>` in base64url; `aad` binds a ciphertext to its row so a seed
 * copied onto another factor does not decrypt.
 */
export interface SecretBox {
  seal(plaintext: Buffer, aad: string): string;
  open(sealed: string, aad: string): Buffer;
}

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new Error('The key-encryption key must be 32 bytes');
  return {
    seal(plaintext, aad) {
      // NIST SP 800-38D: 96-bit random IV; far below 2^32 messages per key.
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(aad, 'utf8'));
      const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return ['v1', iv.toString('base64url'), ct.toString('base64url'), cipher.getAuthTag().toString('base64url')].join(
        '.',
      );
    },
    open(sealed, aad) {
      const [v, iv, ct, tag] = sealed.split('.');
      if (v !== 'v1' || !iv || ct === undefined || !tag) throw new Error('Unrecognised sealed secret');
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]);
    },
  };
}
