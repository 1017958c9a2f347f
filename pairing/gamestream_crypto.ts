/**
 * Primitives of the GameStream pairing ceremony (docs/gamestream-protocol.md §3.1): the PIN key, AES-128-ECB
 * without padding, RSA PKCS#1 v1.5 with SHA-256, a certificate's raw signature bytes, and hex. Shared by the
 * host ceremony and our test client.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createSign,
  createVerify,
  X509Certificate,
} from "node:crypto";

/** AES block size; every pairing plaintext is a whole number of blocks (§3.1). */
const AES_BLOCK_BYTES = 16;
/** AES-128. */
const PIN_KEY_BYTES = 16;

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

/** K = SHA-256(salt ‖ PIN)[0:16], the PIN as ASCII digits. */
export function pinKey(salt: Uint8Array, pin: string): Uint8Array {
  return sha256(salt, new TextEncoder().encode(pin)).slice(0, PIN_KEY_BYTES);
}

function aesEcb(encrypt: boolean, key: Uint8Array, data: Uint8Array): Uint8Array {
  if (key.length !== PIN_KEY_BYTES) throw new RangeError(`AES-128 needs a 16-byte key, got ${key.length}`);
  if (data.length % AES_BLOCK_BYTES !== 0) {
    throw new RangeError(`AES-ECB without padding needs whole 16-byte blocks, got ${data.length} bytes`);
  }
  const cipher = encrypt
    ? createCipheriv("aes-128-ecb", key, null)
    : createDecipheriv("aes-128-ecb", key, null);
  cipher.setAutoPadding(false);
  return concatBytes(cipher.update(data), cipher.final());
}

export function aesEcbEncrypt(key: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return aesEcb(true, key, plaintext);
}

export function aesEcbDecrypt(key: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return aesEcb(false, key, ciphertext);
}

/** RSA PKCS#1 v1.5 over SHA-256 with a PEM private key. */
export function rsaSign(keyPem: string, data: Uint8Array): Uint8Array {
  return new Uint8Array(createSign("sha256").update(data).sign(keyPem));
}

/** Checks an RSA PKCS#1 v1.5 SHA-256 signature against a PEM certificate's key; false for any bad input. */
export function rsaVerify(certPem: string, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    const publicKey = new X509Certificate(certPem).publicKey;
    return createVerify("sha256").update(data).verify(publicKey, signature);
  } catch {
    return false;
  }
}

// ---- certificate signature (§3.1 `sig(cert)`) ------------------------------------------------

interface DerElement {
  tag: number;
  /** Offset of the first content byte. */
  start: number;
  /** Offset just past the content. */
  end: number;
}

/** Longest definite length we accept: 4 octets already allow 4 GiB. */
const MAX_LENGTH_OCTETS = 4;

function readDer(der: Uint8Array, offset: number, limit: number): DerElement {
  if (offset + 2 > limit) throw new RangeError("truncated DER element");
  const tag = der[offset];
  const first = der[offset + 1];
  let length = first;
  let start = offset + 2;
  if (first >= 0x80) {
    const octets = first & 0x7f;
    if (octets === 0 || octets > MAX_LENGTH_OCTETS) throw new RangeError("unsupported DER length");
    if (start + octets > limit) throw new RangeError("truncated DER length");
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + der[start + i];
    start += octets;
  }
  if (start + length > limit) throw new RangeError("DER element runs past its container");
  return { tag, start, end: start + length };
}

const SEQUENCE = 0x30;
const BIT_STRING = 0x03;

/**
 * The contents of a DER Certificate's signatureValue BIT STRING without its unused-bits octet.
 * Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }.
 */
export function signatureValueFromDer(der: Uint8Array): Uint8Array {
  const certificate = readDer(der, 0, der.length);
  if (certificate.tag !== SEQUENCE || certificate.end !== der.length) {
    throw new RangeError("a certificate is exactly one DER SEQUENCE");
  }
  const tbs = readDer(der, certificate.start, certificate.end);
  const algorithm = readDer(der, tbs.end, certificate.end);
  const signature = readDer(der, algorithm.end, certificate.end);
  if (tbs.tag !== SEQUENCE || algorithm.tag !== SEQUENCE || signature.tag !== BIT_STRING) {
    throw new RangeError("not a Certificate structure");
  }
  if (signature.end !== certificate.end) throw new RangeError("data after the certificate signature");
  if (signature.end - signature.start < 2) throw new RangeError("empty certificate signature");
  return der.slice(signature.start + 1, signature.end);
}

/** §3.1 `sig(cert)` of a PEM certificate: 256 bytes for RSA-2048. Throws when it is not a certificate. */
export function certificateSignature(certPem: string): Uint8Array {
  return signatureValueFromDer(new Uint8Array(new X509Certificate(certPem).raw));
}

// ---- hex ---------------------------------------------------------------------------------------

/** Upper-case hex, as Sunshine emits (§0). */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out.toUpperCase();
}

/** Strict hex of either case (even length, hex digits only); null for anything else. */
export function fromHex(text: string): Uint8Array | null {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) return null;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Equal length and bytes, without an early exit on the first difference. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
