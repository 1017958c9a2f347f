import { createPrivateKey, X509Certificate } from "node:crypto";
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { createSelfSignedCertificate } from "../../host/x509.ts";
import { parseQuery, renderUnpair } from "../../gamestream/nvhttp_xml.ts";
import { GameStreamPairing, toHex } from "../../pairing/mod.ts";
import type { PairedClient, PairingRequestContext } from "../../pairing/mod.ts";
import { createClientIdentity, GameStreamPairingClient, xmlElement } from "./pairing_client.ts";

// RSA key generation takes ~100 ms each: one host, two clients and a MITM for the whole file.
const notAfter = new Date(Date.now() + 86_400_000);
const server = createSelfSignedCertificate({ kind: "rsa2048", commonName: "host", notAfter });
const mitm = createSelfSignedCertificate({ kind: "rsa2048", commonName: "mitm", notAfter });
const identity = createClientIdentity();
const otherIdentity = createClientIdentity();

const HTTP: PairingRequestContext = { sourceIp: "10.0.0.2", overHttps: false, clientCertPaired: false };

/**
 * The host's /pair and /unpair in-process. `hostPin` is what the host user types once phase 1 arrives;
 * `rewrite` lets a man in the middle edit replies.
 */
function harness(hostPin: string | null, rewrite: (body: string) => string = (body) => body) {
  const paired: PairedClient[] = [];
  const targets: string[] = [];
  const host = new GameStreamPairing({
    serverCertPem: server.certPem,
    serverKeyPem: server.keyPem,
    onPaired: (client) => paired.push(client),
  });
  const httpGet = async (target: string): Promise<string> => {
    targets.push(target);
    const query = parseQuery(target);
    // The host's plain-HTTP /unpair proves nothing about who sends it, so it never touches a ceremony.
    if (target.startsWith("/unpair?")) return renderUnpair();
    assert(target.startsWith("/pair?"), target);
    const reply = host.handle(query, HTTP);
    if (query.get("phrase") === "getservercert" && hostPin !== null) host.submitPin(hostPin);
    return rewrite((await reply).body);
  };
  return { host, paired, targets, httpGet };
}

Deno.test("pairing client: identity is an RSA-2048, SHA-256, CN 'NVIDIA GameStream Client' cert", () => {
  const cert = new X509Certificate(identity.certPem);
  assertEquals(cert.subject, "CN=NVIDIA GameStream Client");
  assertEquals(cert.publicKey.asymmetricKeyType, "rsa");
  assertEquals(cert.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  assert(cert.checkPrivateKey(createPrivateKey(identity.keyPem)));
  // sha256WithRSAEncryption, OID 1.2.840.113549.1.1.11, as DER.
  const sha256WithRsa = toHex(
    Uint8Array.of(0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b),
  );
  assert(toHex(new Uint8Array(cert.raw)).includes(sha256WithRsa));
  assert(new Date(cert.validTo).getTime() > Date.now() + 19 * 365 * 86_400_000, "20-year validity");
  assertMatch(identity.uniqueId, /^[0-9A-F]{16}$/);
  assert(identity.uniqueId !== otherIdentity.uniqueId);
});

Deno.test("pairing client ↔ host: the right PIN pairs both sides and pins the client certificate", async () => {
  const { host, paired, targets, httpGet } = harness("5338");
  const client = new GameStreamPairingClient({ identity, httpGet });
  const outcome = await client.pair("5338");
  assertEquals(outcome, { paired: true, serverCertPem: server.certPem });
  assertEquals(paired, [{ certPem: identity.certPem, deviceName: "roth", uniqueId: identity.uniqueId }]);
  assertEquals(targets.length, 4, "phases 1–4, no /unpair");
  // Every request leads with MQT's uniqueid and uuid.
  for (const target of targets) {
    assertMatch(target, new RegExp(`^/pair\\?uniqueid=${identity.uniqueId}&uuid=`));
  }

  const phase5 = client.phase5Query();
  assertMatch(phase5, /^\/pair\?uniqueid=.*&phrase=pairchallenge$/);
  const overTls = { sourceIp: "10.0.0.2", overHttps: true, clientCertPaired: true };
  assertEquals(xmlElement((await host.handle(parseQuery(phase5), overTls)).body, "paired"), "1");
  assertEquals(xmlElement((await host.handle(parseQuery(phase5), HTTP)).body, "paired"), "0");
});

Deno.test("pairing client ↔ host: a wrong PIN is reported as wrong_pin and pins nothing", async () => {
  const { host, paired, targets, httpGet } = harness("1111");
  const outcome = await new GameStreamPairingClient({ identity, httpGet }).pair("5338");
  assertEquals(outcome.paired, false);
  assertEquals(outcome.reason, "wrong_pin");
  assertEquals(outcome.serverCertPem, server.certPem);
  assertEquals(paired, []);
  // Like MQT: stop after phase 3 and unpair; the host's ceremony outlives a plain-HTTP /unpair and ends
  // at the next phase, its TTL, or the client's next phase 1.
  assertEquals(targets.length, 4);
  assertMatch(targets[3], /^\/unpair\?uniqueid=/);
  assertEquals(host.pinPending(), false);
  const late = new Map([["uniqueid", identity.uniqueId], ["clientpairingsecret", "00"]]);
  assertMatch((await host.handle(late, HTTP)).body, /status_message="Client pairing secret too short"/);
  assertMatch((await host.handle(late, HTTP)).body, /status_message="Invalid uniqueid"/);
});

Deno.test("pairing client: a substituted host certificate is reported as mitm", async () => {
  const swapCert = (body: string) =>
    body.replace(
      /<plaincert>[^<]*<\/plaincert>/,
      `<plaincert>${toHex(new TextEncoder().encode(mitm.certPem))}</plaincert>`,
    );
  const { paired, targets, httpGet } = harness("5338", swapCert);
  const outcome = await new GameStreamPairingClient({ identity, httpGet }).pair("5338");
  assertEquals([outcome.paired, outcome.reason, outcome.serverCertPem], [false, "mitm", mitm.certPem]);
  assertEquals(paired, []);
  assertMatch(targets.at(-1)!, /^\/unpair\?/);
});

Deno.test("pairing client: a busy or closing host is 'refused' with its message", async () => {
  const { host, httpGet } = harness(null);
  const first = new GameStreamPairingClient({ identity: otherIdentity, httpGet }).pair("0000");
  // One ceremony per address: the second client is refused at once instead of waiting.
  const second = await new GameStreamPairingClient({ identity, httpGet }).pair("0000");
  assertEquals(second.paired, false);
  assertEquals(second.reason, "refused");
  assertMatch(second.message ?? "", /already in progress/);
  assertEquals(second.serverCertPem, "");
  host.close();
  const closed = await first;
  assertEquals([closed.paired, closed.reason], [false, "refused"]);
  assertMatch(closed.message ?? "", /shutting down/);
});

Deno.test("pairing client: malformed host replies are bad_reply, not exceptions", async () => {
  const replies: Record<string, string> = {
    getservercert: '<root status_code="200"><paired>1</paired><plaincert>ZZ</plaincert></root>',
  };
  const badCert = await new GameStreamPairingClient({
    identity,
    httpGet: (target) =>
      Promise.resolve(target.includes("getservercert") ? replies.getservercert : "<root/>"),
  }).pair("1234");
  assertEquals([badCert.paired, badCert.reason], [false, "bad_reply"]);

  const { httpGet } = harness(
    "1234",
    (body) => body.replace(/<challengeresponse>[^<]*/, "<challengeresponse>00"),
  );
  const short = await new GameStreamPairingClient({ identity, httpGet }).pair("1234");
  assertEquals([short.paired, short.reason], [false, "bad_reply"]);
});
