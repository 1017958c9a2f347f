// Section numbers (§) refer to docs/gamestream-protocol.md.
import { verify, X509Certificate } from "node:crypto";
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { createSelfSignedCertificate, derTlv } from "../host/x509.ts";
import {
  aesEcbDecrypt,
  aesEcbEncrypt,
  bytesEqual,
  certificateSignature,
  concatBytes,
  fromHex,
  pinKey,
  rsaSign,
  rsaVerify,
  sha256,
  signatureValueFromDer,
  toHex,
} from "./gamestream_crypto.ts";

const notAfter = new Date(Date.now() + 86_400_000);
const alice = createSelfSignedCertificate({ kind: "rsa2048", commonName: "alice", notAfter });
const bob = createSelfSignedCertificate({ kind: "rsa2048", commonName: "bob", notAfter });

Deno.test("crypto: the §3.1 test vector (salt ff5d…, PIN 5338)", () => {
  const key = pinKey(fromHex("ff5dc6eda99339a8a0793e216c4257c4")!, "5338");
  assertEquals(toHex(key), "5EA186FFBA663C75AEC82187CE502647");
  const plain = new TextEncoder().encode("CLIENT CHALLENGE");
  const cipher = aesEcbEncrypt(key, plain);
  assertEquals(toHex(cipher), "741CD3D6890C16DA39D53BCA0893AAF0");
  assertEquals(aesEcbDecrypt(key, cipher), plain);
});

Deno.test("crypto: PIN key is the first 16 bytes of SHA-256(salt ‖ ASCII PIN)", () => {
  const salt = Uint8Array.of(1, 2, 3);
  assertEquals(pinKey(salt, "0042"), sha256(salt, Uint8Array.of(0x30, 0x30, 0x34, 0x32)).subarray(0, 16));
  assertEquals(pinKey(salt, "0042").length, 16);
  assert(!bytesEqual(pinKey(salt, "0042"), pinKey(salt, "0043")));
});

Deno.test("crypto: AES-ECB is per block, unpadded, and refuses partial blocks or wrong keys", () => {
  const key = new Uint8Array(16).fill(7);
  const block = new Uint8Array(16).fill(9);
  const two = aesEcbEncrypt(key, concatBytes(block, block));
  assertEquals(two.length, 32, "no padding block is added");
  assertEquals(two.subarray(0, 16), two.subarray(16), "ECB: equal blocks encrypt equally");
  assertEquals(aesEcbEncrypt(key, new Uint8Array(0)).length, 0);
  assertThrows(() => aesEcbEncrypt(key, new Uint8Array(15)), /16-byte blocks/);
  assertThrows(() => aesEcbDecrypt(key, new Uint8Array(17)), /16-byte blocks/);
  assertThrows(() => aesEcbEncrypt(new Uint8Array(32), block), /16-byte key/);
});

Deno.test("crypto: RSA SHA-256 signatures verify only with the signer's certificate and data", () => {
  const data = new TextEncoder().encode("server secret 16");
  const signature = rsaSign(alice.keyPem, data);
  assertEquals(signature.length, 256);
  assert(rsaVerify(alice.certPem, data, signature));
  assert(!rsaVerify(bob.certPem, data, signature), "another key");
  const flipped = signature.slice();
  flipped[100] ^= 1;
  assert(!rsaVerify(alice.certPem, data, flipped), "tampered signature");
  assert(!rsaVerify(alice.certPem, Uint8Array.of(1), signature), "other data");
  assert(!rsaVerify("not a certificate", data, signature), "garbage certificate is false, not a throw");
  assert(!rsaVerify(alice.certPem, data, new Uint8Array(0)));
});

Deno.test("crypto: certificateSignature is the signatureValue that signs the tbsCertificate", () => {
  const der = new Uint8Array(new X509Certificate(alice.certPem).raw);
  const signature = certificateSignature(alice.certPem);
  assertEquals(signature.length, 256);
  // For an RSA certificate the signature BIT STRING is the last element, so its bytes end the DER.
  assertEquals(signature, der.slice(-256));
  // Both SEQUENCE headers use the two-octet long form (30 82 hi lo) at this size.
  assertEquals([der[0], der[1], der[4], der[5]], [0x30, 0x82, 0x30, 0x82]);
  const tbs = der.subarray(4, 8 + der[6] * 256 + der[7]);
  assert(verify("sha256", tbs, new X509Certificate(alice.certPem).publicKey, signature));
  assertThrows(() => certificateSignature("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"));
});

Deno.test("crypto: signatureValueFromDer reads short and long lengths and rejects other shapes", () => {
  const seq = (...parts: Uint8Array[]) => derTlv(0x30, concatBytes(...parts));
  const bits = (bytes: Uint8Array) => derTlv(0x03, concatBytes(Uint8Array.of(0), bytes));
  const tbs = seq(new Uint8Array(300).fill(0x05)); // long-form length
  const algorithm = seq(Uint8Array.of(0x05, 0x00));
  assertEquals(
    signatureValueFromDer(seq(tbs, algorithm, bits(Uint8Array.of(0xaa, 0xbb)))),
    Uint8Array.of(0xaa, 0xbb),
  );
  const big = new Uint8Array(513).fill(0x5a);
  assertEquals(signatureValueFromDer(seq(tbs, algorithm, bits(big))), big);

  const good = seq(tbs, algorithm, bits(Uint8Array.of(1)));
  assertThrows(() => signatureValueFromDer(good.subarray(0, good.length - 1)), /runs past|truncated/);
  assertThrows(() => signatureValueFromDer(concatBytes(good, Uint8Array.of(0))), /exactly one/);
  assertThrows(() => signatureValueFromDer(seq(tbs, algorithm)), /truncated/);
  assertThrows(
    () => signatureValueFromDer(seq(tbs, algorithm, derTlv(0x04, Uint8Array.of(0, 1)))),
    /Certificate/,
  );
  assertThrows(() => signatureValueFromDer(seq(tbs, algorithm, derTlv(0x03, Uint8Array.of(0)))), /empty/);
  assertThrows(
    () => signatureValueFromDer(seq(tbs, algorithm, bits(Uint8Array.of(1)), Uint8Array.of(5, 0))),
    /after/,
  );
  assertThrows(() => signatureValueFromDer(Uint8Array.of(0x30, 0x85, 1, 1, 1, 1, 1)), /unsupported/);
  assertThrows(() => signatureValueFromDer(new Uint8Array(0)), /truncated/);
});

Deno.test("crypto: hex is upper case out, either case in, strict", () => {
  assertEquals(toHex(Uint8Array.of(0, 0xab, 0x0f, 0xff)), "00AB0FFF");
  assertEquals(fromHex("00ab0FfF"), Uint8Array.of(0, 0xab, 0x0f, 0xff));
  assertEquals(fromHex(""), new Uint8Array(0));
  for (const bad of ["0", "abc", "0g", "0x12", " 12", "12 ", "+1", "١٢"]) {
    assertEquals(fromHex(bad), null, bad);
  }
  assert(bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2)));
  assert(!bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3)));
  assert(!bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 0)));
});
