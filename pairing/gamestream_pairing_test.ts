import fc from "fast-check";
import { assert, assertEquals } from "../tests/assert.ts";
import { createSelfSignedCertificate } from "../host/x509.ts";
import { GameStreamPairing } from "./gamestream_pairing.ts";
import {
  aesEcbDecrypt,
  aesEcbEncrypt,
  bytesEqual,
  certificateSignature,
  fromHex,
  pinKey,
  rsaSign,
  rsaVerify,
  sha256,
  toHex,
} from "./gamestream_crypto.ts";

const later = new Date(Date.now() + 365 * 86_400_000);
const server = createSelfSignedCertificate({ kind: "rsa2048", commonName: "host", notAfter: later });
const client = createSelfSignedCertificate({
  kind: "rsa2048",
  commonName: "NVIDIA GameStream Client",
  notAfter: later,
});
const ctx = { sourceIp: "10.0.0.2", overHttps: false, clientCertPaired: false };
const tag = (xml: string, name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1] ?? "";
const q = (entries: Record<string, string>) => new Map(Object.entries({ uniqueid: "C1", ...entries }));

Deno.test("pairing crypto: the §3.1 vector (salt ff5d…, PIN 5338)", () => {
  const key = pinKey(fromHex("ff5dc6eda99339a8a0793e216c4257c4")!, "5338");
  assertEquals(toHex(key), "5EA186FFBA663C75AEC82187CE502647");
  assertEquals(
    toHex(aesEcbEncrypt(key, new TextEncoder().encode("CLIENT CHALLENGE"))),
    "741CD3D6890C16DA39D53BCA0893AAF0",
  );
  assertEquals(certificateSignature(server.certPem).length, 256);
  const signature = rsaSign(server.keyPem, Uint8Array.of(1, 2, 3));
  assert(rsaVerify(server.certPem, Uint8Array.of(1, 2, 3), signature));
  assert(!rsaVerify(client.certPem, Uint8Array.of(1, 2, 3), signature));
});

/** Runs phases 1–4 as a client would; returns what the host said at phase 4 and whether the client saw a PIN mismatch. */
async function ceremony(
  host: GameStreamPairing,
  clientPin: string,
  hostPin: string,
  uniqueid = "C1",
  ip = "10.0.0.2",
) {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const key = pinKey(salt, clientPin);
  const phase1 = host.handle(
    q({
      uniqueid,
      phrase: "getservercert",
      salt: toHex(salt),
      clientcert: toHex(new TextEncoder().encode(client.certPem)),
    }),
    { ...ctx, sourceIp: ip },
  );
  assert(host.pinPending());
  assertEquals(host.submitPin(hostPin), "delivered");
  const reply1 = (await phase1).body;
  assertEquals(tag(reply1, "paired"), "1");
  const serverPem = new TextDecoder().decode(fromHex(tag(reply1, "plaincert"))!);
  const cc = crypto.getRandomValues(new Uint8Array(16));
  const reply2 =
    (await host.handle(q({ uniqueid, clientchallenge: toHex(aesEcbEncrypt(key, cc)) }), ctx)).body;
  const decrypted = aesEcbDecrypt(key, fromHex(tag(reply2, "challengeresponse"))!);
  const cs = crypto.getRandomValues(new Uint8Array(16));
  const hc = sha256(decrypted.subarray(32, 48), certificateSignature(client.certPem), cs);
  const reply3 =
    (await host.handle(q({ uniqueid, serverchallengeresp: toHex(aesEcbEncrypt(key, hc)) }), ctx)).body;
  const secret = fromHex(tag(reply3, "pairingsecret"))!;
  assert(rsaVerify(serverPem, secret.subarray(0, 16), secret.subarray(16)), "server signature");
  const clientSawMismatch = !bytesEqual(
    sha256(cc, certificateSignature(serverPem), secret.subarray(0, 16)),
    decrypted.subarray(0, 32),
  );
  const signed = rsaSign(client.keyPem, cs);
  const reply4 =
    (await host.handle(q({ uniqueid, clientpairingsecret: toHex(cs) + toHex(signed) }), ctx)).body;
  return { paired: tag(reply4, "paired"), clientSawMismatch };
}

Deno.test("pairing: the right PIN pins the client; a wrong PIN is caught on both sides and pins nothing", async () => {
  const pinned: string[] = [];
  const host = new GameStreamPairing({
    serverCertPem: server.certPem,
    serverKeyPem: server.keyPem,
    onPaired: (c) => pinned.push(c.certPem),
  });
  assertEquals(await ceremony(host, "5338", "5338"), { paired: "1", clientSawMismatch: false });
  assertEquals(pinned, [client.certPem]);
  assertEquals(await ceremony(host, "5338", "1111"), { paired: "0", clientSawMismatch: true });
  assertEquals(pinned.length, 1);
  assertEquals(host.pinPending(), false);
});

Deno.test("pairing: order, uniqueid, PIN format, caps and expiry", async () => {
  let now = 0;
  const host = new GameStreamPairing({
    serverCertPem: server.certPem,
    serverKeyPem: server.keyPem,
    now: () => now,
    onPaired: () => {},
  });
  assertEquals(host.submitPin("1234"), "no-handshake");
  assertEquals(host.submitPin("12a4"), "invalid-pin");
  assert((await host.handle(new Map([["phrase", "getservercert"]]), ctx)).body.includes("Missing uniqueid"));
  assert((await host.handle(q({ clientchallenge: "00" }), ctx)).body.includes("Invalid uniqueid"));
  assertEquals((await host.handle(q({}), ctx)).status, 404);
  const cert = toHex(new TextEncoder().encode(client.certPem));
  const salt = "00".repeat(16);
  const first = host.handle(q({ uniqueid: "A", phrase: "getservercert", salt, clientcert: cert }), ctx);
  // Same source address: refused at once.
  const sameIp = await host.handle(
    q({ uniqueid: "B", phrase: "getservercert", salt, clientcert: cert }),
    ctx,
  );
  assert(sameIp.body.includes('status_code="503"'), sameIp.body);
  const others = [1, 2, 3].map((i) =>
    host.handle(q({ uniqueid: `O${i}`, phrase: "getservercert", salt, clientcert: cert }), {
      ...ctx,
      sourceIp: `10.0.1.${i}`,
    })
  );
  const fifth = await host.handle(
    q({ uniqueid: "E", phrase: "getservercert", salt, clientcert: cert }),
    { ...ctx, sourceIp: "10.0.9.9" },
  );
  assert(fifth.body.includes('status_code="503"'), "a fifth waiting ceremony is refused");
  // Out of order: clientpairingsecret before anything else destroys the ceremony.
  const outOfOrder = await host.handle(q({ uniqueid: "A", clientpairingsecret: "00".repeat(20) }), ctx);
  assert(outOfOrder.body.includes("Out of order call to clientpairingsecret"), outOfOrder.body);
  assert((await first).body.includes("<paired>0</paired>"));
  now = 121_000;
  host.tick();
  for (const reply of await Promise.all(others)) assert(reply.body.includes('status_code="408"'), reply.body);
  assertEquals(host.pinPending(), false);
  assert(
    (await host.handle(q({ phrase: "getservercert", salt: "abc", clientcert: cert }), ctx)).body.includes(
      "Salt",
    ),
  );
});

Deno.test("pairing fuzz: any query map yields an XML reply, never a throw", async () => {
  const host = new GameStreamPairing({
    serverCertPem: server.certPem,
    serverKeyPem: server.keyPem,
    onPaired: () => {},
  });
  const keys = [
    "uniqueid",
    "phrase",
    "salt",
    "clientcert",
    "clientchallenge",
    "serverchallengeresp",
    "clientpairingsecret",
  ];
  await fc.assert(
    fc.asyncProperty(
      fc.dictionary(
        fc.constantFrom(...keys),
        fc.oneof(fc.uint8Array({ maxLength: 48 }).map((b) => toHex(b)), fc.string({ maxLength: 20 })),
      ),
      async (entries) => {
        const query = new Map(Object.entries(entries));
        const pending = host.handle(query, ctx);
        if (host.pinPending()) host.submitPin("0000");
        const reply = await pending;
        assert(/status_code="\d+"/.test(reply.body));
      },
    ),
    { numRuns: 300 },
  );
  host.close();
});
