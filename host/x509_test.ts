import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { X509Certificate } from "node:crypto";
import {
  createSelfSignedCertificate,
  derOid,
  keyMatchesCertificate,
  parseCertificatePem,
  sha256Hex,
} from "./x509.ts";

const DAY = 86_400_000;

for (const kind of ["rsa2048", "p256"] as const) {
  Deno.test(`${kind}: self-signed CA:FALSE leaf that verifies and carries the requested names`, () => {
    const notAfter = new Date(Date.UTC(2027, 0, 1));
    const generated = createSelfSignedCertificate({
      kind,
      commonName: "punktfunk test",
      notBefore: new Date(Date.UTC(2026, 0, 1)),
      notAfter,
      dnsNames: ["localhost"],
      ipAddresses: ["127.0.0.1", "::1"],
    });
    const cert = new X509Certificate(generated.certPem);
    assert(cert.verify(cert.publicKey), "signature verifies with its own key");
    assertEquals(cert.ca, false);
    assertEquals(cert.subject, "CN=punktfunk test");
    assertEquals(cert.issuer, cert.subject);
    assertEquals(new Date(cert.validTo).getTime(), notAfter.getTime());
    assertEquals(cert.subjectAltName, "DNS:localhost, IP Address:127.0.0.1, IP Address:::1");
    assertEquals(cert.publicKey.asymmetricKeyType, kind === "rsa2048" ? "rsa" : "ec");
    assert(keyMatchesCertificate(generated.keyPem, generated.certPem));
    assertEquals(sha256Hex(generated.certDer), parseCertificatePem(generated.certPem).fingerprint);
  });
}

Deno.test("dates from 2050 use GeneralizedTime and still parse", () => {
  const notAfter = new Date(Date.UTC(2060, 5, 1));
  const generated = createSelfSignedCertificate({ kind: "p256", commonName: "long", notAfter });
  assertEquals(parseCertificatePem(generated.certPem).notAfter.getTime(), notAfter.getTime());
});

Deno.test("a key from another certificate does not match", () => {
  const a = createSelfSignedCertificate({
    kind: "p256",
    commonName: "a",
    notAfter: new Date(Date.now() + DAY),
  });
  const b = createSelfSignedCertificate({
    kind: "p256",
    commonName: "b",
    notAfter: new Date(Date.now() + DAY),
  });
  assert(!keyMatchesCertificate(a.keyPem, b.certPem));
});

Deno.test("invalid input is refused clearly", () => {
  assertThrows(
    () => parseCertificatePem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
    /not a valid PEM/,
  );
  assertThrows(
    () =>
      createSelfSignedCertificate({
        kind: "p256",
        commonName: "x",
        notBefore: new Date(1000),
        notAfter: new Date(0),
      }),
    /notAfter/,
  );
  assertThrows(
    () =>
      createSelfSignedCertificate({
        kind: "p256",
        commonName: "x",
        notAfter: new Date(Date.now() + DAY),
        ipAddresses: ["300.1.1.1"],
      }),
    /invalid IPv4/,
  );
});

Deno.test("OID encoding matches known DER", () => {
  // 1.2.840.113549.1.1.11 (sha256WithRSAEncryption) from RFC 4055.
  assertEquals([...derOid("1.2.840.113549.1.1.11")], [6, 9, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 11]);
  assertEquals([...derOid("2.5.29.19")], [6, 3, 0x55, 0x1d, 0x13]);
});
