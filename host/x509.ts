/**
 * Self-signed X.509 v3 leaf certificates, DER-encoded by hand (Deno has no certificate builder and
 * JSR is out of reach). Keys and signatures come from node:crypto; everything here is pure bytes.
 */
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from "node:crypto";

export type KeyKind = "rsa2048" | "p256";

export interface CertificateRequest {
  kind: KeyKind;
  commonName: string;
  /** Validity start; defaults to one hour before now to absorb small clock skew between peers. */
  notBefore?: Date;
  notAfter: Date;
  dnsNames?: string[];
  ipAddresses?: string[];
}

export interface GeneratedCertificate {
  certPem: string;
  keyPem: string;
  certDer: Uint8Array;
}

// ---- DER primitives -------------------------------------------------------------------------

function encodeLength(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function derTlv(tag: number, content: Uint8Array): Uint8Array {
  return concat([Uint8Array.of(tag), encodeLength(content.length), content]);
}

const sequence = (...items: Uint8Array[]) => derTlv(0x30, concat(items));
const set = (...items: Uint8Array[]) => derTlv(0x31, concat(items));
const explicit = (n: number, inner: Uint8Array) => derTlv(0xa0 | n, inner);
const octetString = (bytes: Uint8Array) => derTlv(0x04, bytes);
const bitString = (bytes: Uint8Array) => derTlv(0x03, concat([Uint8Array.of(0), bytes]));
const derNull = () => Uint8Array.of(0x05, 0x00);
const derBoolean = (value: boolean) => Uint8Array.of(0x01, 0x01, value ? 0xff : 0x00);
const utf8String = (text: string) => derTlv(0x0c, new TextEncoder().encode(text));

/** Non-negative INTEGER from big-endian magnitude bytes (adds the 0x00 sign byte when needed). */
function unsignedInteger(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  return derTlv(0x02, trimmed[0] & 0x80 ? concat([Uint8Array.of(0), trimmed]) : trimmed);
}

export function derOid(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map(Number);
  const bytes: number[] = [arcs[0] * 40 + arcs[1]];
  for (const arc of arcs.slice(2)) {
    const base128: number[] = [];
    let n = arc;
    do {
      base128.unshift(n & 0x7f);
      n = Math.floor(n / 128);
    } while (n > 0);
    for (let i = 0; i < base128.length - 1; i++) base128[i] |= 0x80;
    bytes.push(...base128);
  }
  return derTlv(0x06, Uint8Array.from(bytes));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
function derTime(date: Date): Uint8Array {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, "") + "Z";
  const year = date.getUTCFullYear();
  const ascii = (s: string) => new TextEncoder().encode(s);
  return year < 2050 ? derTlv(0x17, ascii(digits.slice(2))) : derTlv(0x18, ascii(digits));
}

function ipAddressBytes(ip: string): Uint8Array {
  if (ip.includes(":")) {
    const [head, tail = ""] = ip.split("::");
    const headParts = head ? head.split(":") : [];
    const tailParts = ip.includes("::") && tail ? tail.split(":") : [];
    const missing = 8 - headParts.length - tailParts.length;
    const groups = [...headParts, ...Array(ip.includes("::") ? missing : 0).fill("0"), ...tailParts];
    if (groups.length !== 8) throw new Error(`invalid IPv6 address "${ip}"`);
    return Uint8Array.from(groups.flatMap((g) => {
      const n = parseInt(g, 16);
      return [n >> 8, n & 0xff];
    }));
  }
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`invalid IPv4 address "${ip}"`);
  }
  return Uint8Array.from(parts);
}

// ---- certificate ----------------------------------------------------------------------------

const OID = {
  commonName: "2.5.4.3",
  sha256WithRsa: "1.2.840.113549.1.1.11",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
};

function extension(oid: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical
    ? sequence(derOid(oid), derBoolean(true), octetString(value))
    : sequence(derOid(oid), octetString(value));
}

function generateKey(kind: KeyKind): { privateKey: KeyObject; publicKey: KeyObject } {
  return kind === "rsa2048"
    ? generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 65537 })
    : generateKeyPairSync("ec", { namedCurve: "P-256" });
}

function toPem(label: string, der: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...der));
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** Makes a key pair and a self-signed CA:FALSE leaf for it (rustls rejects CA:TRUE leaves). */
export function createSelfSignedCertificate(request: CertificateRequest): GeneratedCertificate {
  const { privateKey, publicKey } = generateKey(request.kind);
  const notBefore = request.notBefore ?? new Date(Date.now() - 3600_000);
  if (request.notAfter <= notBefore) throw new Error("certificate notAfter must be after notBefore");

  const algorithm = request.kind === "rsa2048"
    ? sequence(derOid(OID.sha256WithRsa), derNull())
    : sequence(derOid(OID.ecdsaWithSha256));
  const name = sequence(set(sequence(derOid(OID.commonName), utf8String(request.commonName))));
  const serial = randomBytes(16);
  serial[0] &= 0x7f; // positive, at most 16 octets (RFC 5280 allows 20)

  // digitalSignature for both; keyEncipherment as well for RSA key transport.
  const keyUsageBits = request.kind === "rsa2048" ? 0xa0 : 0x80;
  const altNames = [
    ...(request.dnsNames ?? []).map((dns) => derTlv(0x82, new TextEncoder().encode(dns))),
    ...(request.ipAddresses ?? []).map((ip) => derTlv(0x87, ipAddressBytes(ip))),
  ];
  const extensions = [
    extension(OID.basicConstraints, true, sequence()),
    extension(OID.keyUsage, true, derTlv(0x03, Uint8Array.of(5, keyUsageBits))),
    extension(OID.extKeyUsage, false, sequence(derOid(OID.serverAuth), derOid(OID.clientAuth))),
    ...(altNames.length > 0 ? [extension(OID.subjectAltName, false, sequence(...altNames))] : []),
  ];

  const spki = new Uint8Array(publicKey.export({ type: "spki", format: "der" }));
  const tbs = sequence(
    explicit(0, derTlv(0x02, Uint8Array.of(2))),
    unsignedInteger(serial),
    algorithm,
    name,
    sequence(derTime(notBefore), derTime(request.notAfter)),
    name,
    spki,
    explicit(3, sequence(...extensions)),
  );
  const signature = new Uint8Array(sign("sha256", tbs, privateKey));
  const certDer = sequence(tbs, algorithm, bitString(signature));
  const keyDer = new Uint8Array(privateKey.export({ type: "pkcs8", format: "der" }));
  return { certPem: toPem("CERTIFICATE", certDer), keyPem: toPem("PRIVATE KEY", keyDer), certDer };
}

export interface CertificateSummary {
  der: Uint8Array;
  /** Lowercase hex SHA-256 of the DER: the identity pairing stores and APIs use. */
  fingerprint: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
  keyType: string;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Parses a PEM certificate; throws a descriptive error for anything that is not one. */
export function parseCertificatePem(pem: string): CertificateSummary {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (error) {
    throw new Error(`not a valid PEM certificate: ${(error as Error).message}`);
  }
  const der = new Uint8Array(cert.raw);
  return {
    der,
    fingerprint: sha256Hex(der),
    subject: cert.subject.split("\n").join(", "),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    keyType: cert.publicKey.asymmetricKeyType ?? "unknown",
  };
}

/** Checks that a PEM private key parses and belongs to the certificate's public key. */
export function keyMatchesCertificate(keyPem: string, certPem: string): boolean {
  const key = createPrivateKey(keyPem);
  const cert = new X509Certificate(certPem);
  return cert.checkPrivateKey(key);
}
