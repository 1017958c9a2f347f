/**
 * Primitives of the GameStream pairing ceremony (§3.1): PIN key, AES-128-ECB without padding, RSA
 * PKCS#1 v1.5 with SHA-256, and a certificate's raw signature bytes. Used by both the host ceremony and
 * our test client.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createSign,
  createVerify,
  X509Certificate,
} from "node:crypto";

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

/** K = SHA-256(salt ‖ PIN)[0:16]. */
export function pinKey(salt: Uint8Array, pin: string): Uint8Array {
  return sha256(salt, new TextEncoder().encode(pin)).subarray(0, 16);
}

function ecb(encrypt: boolean, key: Uint8Array, data: Uint8Array): Uint8Array {
  if (data.length % 16 !== 0) throw new RangeError("AES-ECB data must be a multiple of 16 bytes");
  const cipher = encrypt
    ? createCipheriv("aes-128-ecb", key, null)
    : createDecipheriv("aes-128-ecb", key, null);
  cipher.setAutoPadding(false);
  return new Uint8Array(Buffer.concat([cipher.update(data), cipher.final()]));
}

export const aesEcbEncrypt = (key: Uint8Array, data: Uint8Array): Uint8Array => ecb(true, key, data);
export const aesEcbDecrypt = (key: Uint8Array, data: Uint8Array): Uint8Array => ecb(false, key, data);

export function rsaSign(keyPem: string, data: Uint8Array): Uint8Array {
  return new Uint8Array(createSign("sha256").update(data).sign(keyPem));
}

export function rsaVerify(certPem: string, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return createVerify("sha256").update(data).verify(new X509Certificate(certPem).publicKey, signature);
  } catch {
    return false;
  }
}

/** Reads a DER length at `offset`; returns [length, header bytes consumed after the tag]. */
function derLength(der: Uint8Array, offset: number): [number, number] {
  const first = der[offset];
  if (first === undefined) throw new RangeError("truncated DER");
  if (first < 0x80) return [first, 1];
  const count = first & 0x7f;
  if (count === 0 || count > 4) throw new RangeError("unsupported DER length");
  let length = 0;
  for (let i = 1; i <= count; i++) {
    const byte = der[offset + i];
    if (byte === undefined) throw new RangeError("truncated DER");
    length = length * 256 + byte;
  }
  return [length, 1 + count];
}

/** The certificate's signatureValue BIT STRING contents without the unused-bits byte (§3.1 `sig(cert)`). */
export function certificateSignature(certPem: string): Uint8Array {
  const der = new Uint8Array(new X509Certificate(certPem).raw);
  if (der[0] !== 0x30) throw new RangeError("certificate is not a DER SEQUENCE");
  let [, header] = derLength(der, 1);
  let offset = 1 + header;
  // Skip tbsCertificate and signatureAlgorithm.
  for (let i = 0; i < 2; i++) {
    const [length, lengthBytes] = derLength(der, offset + 1);
    offset += 1 + lengthBytes + length;
  }
  if (der[offset] !== 0x03) throw new RangeError("certificate has no signature BIT STRING");
  const [length, lengthBytes] = derLength(der, offset + 1);
  header = 1 + lengthBytes;
  return der.slice(offset + header + 1, offset + header + length);
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase();
}

/** Strict hex (even length, hex digits only); null otherwise. */
export function fromHex(text: string): Uint8Array | null {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) return null;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
