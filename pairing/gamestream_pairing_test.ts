import fc from "fast-check";
import { assert, assertEquals, assertMatch, assertThrows } from "../tests/assert.ts";
import { createSelfSignedCertificate } from "../host/x509.ts";
import { XML_PROLOG } from "../gamestream/nvhttp_xml.ts";
import { GameStreamPairing } from "./gamestream_pairing.ts";
import type {
  NvReply,
  PairedClient,
  PairingHostOptions,
  PairingRequestContext,
} from "./gamestream_pairing.ts";
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
  toHex,
} from "./gamestream_crypto.ts";

// RSA key generation takes ~100 ms each: three identities for the whole file.
const notAfter = new Date(Date.now() + 86_400_000);
const server = createSelfSignedCertificate({ kind: "rsa2048", commonName: "host", notAfter });
const client = createSelfSignedCertificate({
  kind: "rsa2048",
  commonName: "NVIDIA GameStream Client",
  notAfter,
});
const impostor = createSelfSignedCertificate({ kind: "rsa2048", commonName: "impostor", notAfter });
const clientCertHex = toHex(new TextEncoder().encode(client.certPem));

const HTTP: PairingRequestContext = { sourceIp: "10.0.0.2", overHttps: false, clientCertPaired: false };

const tag = (xml: string, name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1] ?? null;
const statusCode = (xml: string) => Number(/<root status_code="(\d+)"/.exec(xml)?.[1] ?? "0");
const statusMessage = (xml: string) => /status_message="([^"]*)"/.exec(xml)?.[1] ?? null;
const query = (entries: Record<string, string>) => new Map(Object.entries(entries));

function newHost(overrides: Partial<PairingHostOptions> = {}) {
  const paired: PairedClient[] = [];
  const host = new GameStreamPairing({
    serverCertPem: server.certPem,
    serverKeyPem: server.keyPem,
    onPaired: (c) => paired.push(c),
    ...overrides,
  });
  return { host, paired };
}

async function isPending(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol("pending");
  const winner = await Promise.race([promise, new Promise((r) => setTimeout(() => r(marker), 0))]);
  return winner === marker;
}

function assertFailure(reply: NvReply, code: number, message: RegExp) {
  assertEquals(reply.status, 200);
  assertEquals(statusCode(reply.body), code, reply.body);
  assertMatch(statusMessage(reply.body) ?? "", message);
  assertEquals(tag(reply.body, "paired"), "0", reply.body);
}

/** A client driven phase by phase with the §3.1 primitives, so a test can deviate at any step. */
class ManualClient {
  readonly salt = crypto.getRandomValues(new Uint8Array(16));
  readonly clientChallenge = crypto.getRandomValues(new Uint8Array(16));
  readonly clientSecret = crypto.getRandomValues(new Uint8Array(16));
  key: Uint8Array;
  serverHash = new Uint8Array(0);
  serverChallenge = new Uint8Array(0);

  constructor(
    readonly host: GameStreamPairing,
    pin: string,
    readonly uniqueid = "C1",
    readonly ctx: PairingRequestContext = HTTP,
  ) {
    this.key = pinKey(this.salt, pin);
  }

  phase1(): Promise<NvReply> {
    return this.host.handle(
      query({
        uniqueid: this.uniqueid,
        uuid: "1234",
        devicename: "roth",
        updateState: "1",
        phrase: "getservercert",
        salt: toHex(this.salt),
        clientcert: clientCertHex,
      }),
      this.ctx,
    );
  }

  async phase2(): Promise<NvReply> {
    const encrypted = toHex(aesEcbEncrypt(this.key, this.clientChallenge));
    const reply = await this.send({ clientchallenge: encrypted });
    const response = fromHex(tag(reply.body, "challengeresponse") ?? "");
    if (response !== null && response.length === 48) {
      const plain = aesEcbDecrypt(this.key, response);
      this.serverHash = plain.slice(0, 32);
      this.serverChallenge = plain.slice(32);
    }
    return reply;
  }

  phase3(): Promise<NvReply> {
    const hash = sha256(this.serverChallenge, certificateSignature(client.certPem), this.clientSecret);
    return this.send({ serverchallengeresp: toHex(aesEcbEncrypt(this.key, hash)) });
  }

  phase4(signingKeyPem = client.keyPem): Promise<NvReply> {
    const secret = concatBytes(this.clientSecret, rsaSign(signingKeyPem, this.clientSecret));
    return this.send({ clientpairingsecret: toHex(secret) });
  }

  send(params: Record<string, string>): Promise<NvReply> {
    return this.host.handle(query({ uniqueid: this.uniqueid, ...params }), this.ctx);
  }

  /** Phase 1 with the host user typing `hostPin`, then phases 2 and 3. */
  async throughPhase3(hostPin: string): Promise<{ phase1: string; phase2: string; phase3: string }> {
    const held = this.phase1();
    assertEquals(this.host.submitPin(hostPin), "delivered");
    const phase1 = (await held).body;
    const phase2 = (await this.phase2()).body;
    const phase3 = (await this.phase3()).body;
    return { phase1, phase2, phase3 };
  }
}

Deno.test("pairing: the constructor refuses a key that is not the certificate's, and bad limits", () => {
  assertThrows(
    () =>
      new GameStreamPairing({ serverCertPem: server.certPem, serverKeyPem: client.keyPem, onPaired() {} }),
    /does not belong/,
  );
  assertThrows(() => newHost({ maxPending: 0 }), /maxPending/);
  assertThrows(() => newHost({ pendingTtlMs: 1.5 }), /pendingTtlMs/);
});

Deno.test("pairing: the right PIN runs phases 1–4 per §3.2 and pins the client", async () => {
  const { host, paired } = newHost();
  const me = new ManualClient(host, "5338", "AB12");
  const held = me.phase1();
  assert(await isPending(held), "phase 1 waits for the PIN");
  assert(host.pinPending());
  assertEquals(host.submitPin("5338"), "delivered");
  const reply1 = await held;
  assertEquals(reply1.status, 200);
  assert(reply1.body.startsWith(XML_PROLOG));
  assertEquals(statusCode(reply1.body), 200);
  assertEquals(tag(reply1.body, "paired"), "1");
  assertEquals(tag(reply1.body, "plaincert"), toHex(new TextEncoder().encode(server.certPem)));
  assertEquals(host.pinPending(), false);

  const reply2 = (await me.phase2()).body;
  assertEquals([statusCode(reply2), tag(reply2, "paired")], [200, "1"]);
  assertEquals(tag(reply2, "challengeresponse")!.length, 96, "E_K(h ‖ sc) is 48 bytes");

  const reply3 = (await me.phase3()).body;
  assertEquals([statusCode(reply3), tag(reply3, "paired")], [200, "1"]);
  const secret = fromHex(tag(reply3, "pairingsecret")!)!;
  assertEquals(secret.length, 16 + 256);
  const serverSecret = secret.subarray(0, 16);
  assert(rsaVerify(server.certPem, serverSecret, secret.subarray(16)), "ss is signed by the host key");
  const expected = sha256(me.clientChallenge, certificateSignature(server.certPem), serverSecret);
  assert(bytesEqual(expected, me.serverHash), "h = H(cc ‖ sig(S_cert) ‖ ss)");

  assertEquals(paired, [], "nothing is pinned before phase 4");
  const reply4 = await me.phase4();
  assertEquals([statusCode(reply4.body), tag(reply4.body, "paired")], [200, "1"]);
  assertEquals(paired, [{ certPem: client.certPem, deviceName: "roth", uniqueId: "AB12" }]);
  assertFailure(await me.phase2(), 400, /^Invalid uniqueid$/);
});

Deno.test("pairing: a wrong PIN carried on to phase 4 is caught there and pins nothing", async () => {
  const { host, paired } = newHost();
  const me = new ManualClient(host, "5338");
  const { phase3 } = await me.throughPhase3("1111");
  // The host cannot tell before phase 4 (§3.3); the client would notice here.
  const serverSecret = fromHex(tag(phase3, "pairingsecret")!)!.subarray(0, 16);
  const expected = sha256(me.clientChallenge, certificateSignature(server.certPem), serverSecret);
  assert(!bytesEqual(expected, me.serverHash));
  const reply4 = await me.phase4();
  assertEquals([reply4.status, statusCode(reply4.body), tag(reply4.body, "paired")], [200, 200, "0"]);
  assertEquals(paired, []);
  assertFailure(await me.phase4(), 400, /^Invalid uniqueid$/);
});

Deno.test("pairing: the right PIN with a client secret not signed by the client's key pins nothing", async () => {
  const { host, paired } = newHost();
  const forged = new ManualClient(host, "5338");
  await forged.throughPhase3("5338");
  assertEquals(tag((await forged.phase4(impostor.keyPem)).body, "paired"), "0");
  const truncated = new ManualClient(host, "5338");
  await truncated.throughPhase3("5338");
  const reply = await truncated.send({ clientpairingsecret: toHex(truncated.clientSecret) });
  assertFailure(reply, 400, /too short/);
  assertEquals(paired, []);
});

Deno.test("pairing: submitPin needs a waiting ceremony and exactly four ASCII digits; the oldest gets it", async () => {
  const { host } = newHost();
  assertEquals(host.submitPin("1234"), "no-handshake");
  for (const pin of ["12a4", "123", "12345", "", " 1234", "1234\n", "١٢٣٤", "１２３４"]) {
    assertEquals(host.submitPin(pin), "invalid-pin", JSON.stringify(pin));
  }
  const first = new ManualClient(host, "0000", "first", { ...HTTP, sourceIp: "10.0.0.1" });
  const second = new ManualClient(host, "0000", "second", { ...HTTP, sourceIp: "10.0.0.2" });
  const heldFirst = first.phase1();
  const heldSecond = second.phase1();
  assertEquals(host.submitPin("12a4"), "invalid-pin");
  assert(await isPending(heldFirst), "an invalid PIN answers nobody");
  assertEquals(host.submitPin("0000"), "delivered");
  assertEquals(tag((await heldFirst).body, "paired"), "1");
  assert(await isPending(heldSecond));
  assert(host.pinPending());
  assertEquals(host.submitPin("0000"), "delivered");
  assertEquals(tag((await heldSecond).body, "paired"), "1");
  assertEquals(host.submitPin("0000"), "no-handshake");
});

Deno.test("pairing: out-of-order calls fail with 400 and destroy the ceremony", async () => {
  const { host, paired } = newHost();
  // Phase 2 while phase 1 still waits for the PIN: both requests fail.
  const early = new ManualClient(host, "1234");
  const held = early.phase1();
  assertFailure(await early.phase2(), 400, /^Out of order call to clientchallenge$/);
  assertFailure(await held, 400, /^Out of order call to clientchallenge$/);
  assertEquals(host.pinPending(), false);
  assertFailure(await early.phase2(), 400, /^Invalid uniqueid$/);

  const skipping = new ManualClient(host, "1234");
  const held2 = skipping.phase1();
  host.submitPin("1234");
  await held2;
  assertFailure(await skipping.phase3(), 400, /^Out of order call to serverchallengeresp$/);
  assertFailure(await skipping.phase2(), 400, /^Invalid uniqueid$/);

  const repeating = new ManualClient(host, "1234");
  const held3 = repeating.phase1();
  host.submitPin("1234");
  await held3;
  assertEquals(tag((await repeating.phase2()).body, "paired"), "1");
  assertFailure(await repeating.phase2(), 400, /^Out of order call to clientchallenge$/);

  const restarting = new ManualClient(host, "1234");
  const held4 = restarting.phase1();
  host.submitPin("1234");
  await held4;
  // A new phase 1 supersedes the ceremony: the old one's later phases find a fresh one held for a PIN.
  const restarted = restarting.phase1();
  assertFailure(await restarting.phase4(), 400, /^Out of order call to clientpairingsecret$/);
  assertFailure(await restarted, 400, /^Out of order call to clientpairingsecret$/);

  const jumping = new ManualClient(host, "1234");
  const held5 = jumping.phase1();
  host.submitPin("1234");
  await held5;
  await jumping.phase2();
  assertFailure(await jumping.phase4(), 400, /^Out of order call to clientpairingsecret$/);
  assertEquals(paired, []);
});

Deno.test("pairing: malformed requests get XML errors, never a throw", async () => {
  const { host } = newHost();
  assertFailure(
    await host.handle(query({ phrase: "getservercert" }), HTTP),
    400,
    /^Missing uniqueid parameter$/,
  );
  assertFailure(await host.handle(query({ uniqueid: "", phrase: "getservercert" }), HTTP), 400, /Missing/);
  for (const phase of ["clientchallenge", "serverchallengeresp", "clientpairingsecret"]) {
    assertFailure(
      await host.handle(query({ uniqueid: "X", [phase]: "00" }), HTTP),
      400,
      /^Invalid uniqueid$/,
    );
  }
  assertFailure(await host.handle(query({ uniqueid: "X" }), HTTP), 404, /^Invalid pairing request$/);
  assertFailure(await host.handle(query({ uniqueid: "X", phrase: "bogus" }), HTTP), 404, /Invalid pairing/);

  const phase1 = (entries: Record<string, string>) =>
    host.handle(
      query({ uniqueid: "X", phrase: "getservercert", clientcert: clientCertHex, ...entries }),
      HTTP,
    );
  assertFailure(await phase1({}), 400, /^Salt too short$/);
  assertFailure(await phase1({ salt: "0".repeat(31) }), 400, /^Salt too short$/);
  assertFailure(await phase1({ salt: "zz" + "0".repeat(30) }), 400, /not hex/);
  const salt = "0".repeat(32);
  for (
    const clientcert of ["", "0", "zz", toHex(new TextEncoder().encode("not a cert")), "00".repeat(16385)]
  ) {
    assertFailure(await phase1({ salt, clientcert }), 400, /^Invalid client certificate$/);
  }
  assertEquals(host.pinPending(), false, "refused requests leave no ceremony");

  // Salt beyond 32 digits is ignored, as Sunshine does.
  const held = phase1({ salt: "0".repeat(32) + "zz" });
  assert(host.pinPending());
  host.submitPin("1234");
  assertEquals(tag((await held).body, "paired"), "1");
  assertFailure(
    await host.handle(query({ uniqueid: "X", clientchallenge: "xyz" }), HTTP),
    400,
    /client challenge/,
  );
  assertFailure(
    await host.handle(query({ uniqueid: "X", clientchallenge: "00" }), HTTP),
    400,
    /Invalid uniqueid/,
  );

  for (const [phase, bad] of [["clientchallenge", "00".repeat(15)], ["serverchallengeresp", "0g"]]) {
    const me = new ManualClient(host, "1234", "Y");
    const held = me.phase1();
    host.submitPin("1234");
    await held;
    if (phase === "serverchallengeresp") await me.phase2();
    assertFailure(await me.send({ [phase]: bad }), 400, /^Invalid /);
    assertFailure(await me.send({ [phase]: bad }), 400, /^Invalid uniqueid$/);
  }
  const me = new ManualClient(host, "1234", "Z");
  await me.throughPhase3("1234");
  assertFailure(await me.send({ clientpairingsecret: "not hex" }), 400, /not hex/);
});

Deno.test("pairing: caps refuse the fifth ceremony and a second one per address, at once", async () => {
  const { host } = newHost();
  const held = [1, 2, 3, 4].map((i) =>
    new ManualClient(host, "1234", `C${i}`, { ...HTTP, sourceIp: `10.0.1.${i}` }).phase1()
  );
  const fifth = new ManualClient(host, "1234", "C5", { ...HTTP, sourceIp: "10.0.1.5" }).phase1();
  assert(!(await isPending(fifth)), "refused without queueing");
  assertFailure(await fifth, 503, /Too many pairing requests/);
  // Ceremonies past the PIN still count.
  assertEquals(host.submitPin("1234"), "delivered");
  assertEquals(tag((await held[0]).body, "paired"), "1");
  assertFailure(
    await new ManualClient(host, "1234", "C6", { ...HTTP, sourceIp: "10.0.1.6" }).phase1(),
    503,
    /Too/,
  );
  host.cancel("C2");
  assertFailure(await held[1], 400, /cancelled/);
  const sameIp = new ManualClient(host, "1234", "C7", { ...HTTP, sourceIp: "10.0.1.3" }).phase1();
  assertFailure(await sameIp, 503, /already in progress/);
  const another = new ManualClient(host, "1234", "C8", { ...HTTP, sourceIp: "10.0.1.8" }).phase1();
  assert(await isPending(another), "a freed slot is usable");
  host.close();
  for (const reply of await Promise.all([...held.slice(2), another])) {
    assertFailure(reply, 503, /shutting down/);
  }
});

Deno.test("pairing: configurable caps allow several ceremonies from one address", async () => {
  const { host } = newHost({ maxPending: 2, maxPendingPerIp: 2 });
  const a = new ManualClient(host, "1234", "A").phase1();
  const b = new ManualClient(host, "1234", "B").phase1();
  assertFailure(
    await new ManualClient(host, "1234", "C", { ...HTTP, sourceIp: "10.9.9.9" }).phase1(),
    503,
    /Too/,
  );
  host.close();
  await Promise.all([a, b]);
});

Deno.test("pairing: a PIN not entered within the TTL fails phase 1; idle ceremonies expire too", async () => {
  let now = 1_000;
  const { host } = newHost({ now: () => now });
  const held = new ManualClient(host, "1234", "slow").phase1();
  now += 120_000;
  host.tick();
  assert(await isPending(held), "exactly the TTL is still in time");
  now += 1;
  host.tick();
  assertFailure(await held, 408, /PIN was not entered in time/);
  assertEquals(host.pinPending(), false);
  assertEquals(host.submitPin("1234"), "no-handshake");

  const idle = new ManualClient(host, "1234", "idle");
  const held2 = idle.phase1();
  now += 60_000;
  host.submitPin("1234");
  await held2;
  now += 120_001;
  assertFailure(await idle.phase2(), 400, /^Invalid uniqueid$/);

  // Each step restarts the idle clock.
  const steady = new ManualClient(host, "1234", "steady");
  const held4 = steady.phase1();
  host.submitPin("1234");
  await held4;
  now += 100_000;
  assertEquals(tag((await steady.phase2()).body, "paired"), "1");
  now += 100_000;
  assertEquals(tag((await steady.phase3()).body, "paired"), "1");

  const custom = newHost({ now: () => now, pendingTtlMs: 10 }).host;
  const held3 = new ManualClient(custom, "1234").phase1();
  now += 11;
  assertEquals(custom.submitPin("1234"), "no-handshake", "submitPin expires stale ceremonies first");
  assertFailure(await held3, 408, /PIN/);
});

Deno.test("pairing: cancel and close answer the held phase 1; close refuses new ceremonies", async () => {
  const { host } = newHost();
  const held = new ManualClient(host, "1234", "U1").phase1();
  host.cancel("someone else");
  assert(await isPending(held));
  host.cancel("U1");
  assertFailure(await held, 400, /cancelled/);
  assertEquals(host.pinPending(), false);
  host.close();
  assertFailure(await new ManualClient(host, "1234", "U2").phase1(), 503, /shutting down/);
});

Deno.test("pairing: phase 5 (pairchallenge) succeeds only over HTTPS with a paired certificate", async () => {
  const { host } = newHost();
  const ask = (ctx: PairingRequestContext) =>
    host.handle(query({ uniqueid: "P", devicename: "roth", updateState: "1", phrase: "pairchallenge" }), ctx);
  assertEquals(tag((await ask(HTTP)).body, "paired"), "0");
  assertEquals(tag((await ask({ ...HTTP, clientCertPaired: true })).body, "paired"), "0");
  assertEquals(tag((await ask({ ...HTTP, overHttps: true })).body, "paired"), "0");
  const ok = await ask({ ...HTTP, overHttps: true, clientCertPaired: true });
  assertEquals([ok.status, statusCode(ok.body), tag(ok.body, "paired")], [200, 200, "1"]);
  assertFailure(await host.handle(query({ phrase: "pairchallenge" }), HTTP), 400, /Missing uniqueid/);
});

Deno.test("pairing: a failure to store the client is a 500, not a success", async () => {
  const { host } = newHost({
    onPaired: () => {
      throw new Error("disk full");
    },
  });
  const me = new ManualClient(host, "1234");
  await me.throughPhase3("1234");
  assertFailure(await me.phase4(), 500, /could not be stored/);
});

function assertXmlReply(reply: NvReply) {
  assertEquals(reply.status, 200);
  assert(reply.body.startsWith(XML_PROLOG), reply.body);
  assertMatch(reply.body.slice(XML_PROLOG.length), /^<root status_code="\d{3}"[ >/]/);
  assert(reply.body.endsWith("</root>") || reply.body.endsWith("/>"), reply.body);
}

const PARAMS = [
  "uniqueid",
  "phrase",
  "salt",
  "clientcert",
  "clientchallenge",
  "serverchallengeresp",
  "clientpairingsecret",
  "devicename",
] as const;

const paramValue = fc.oneof(
  fc.constantFrom("getservercert", "pairchallenge", "A", "B", "", clientCertHex, "0".repeat(32)),
  fc.uint8Array({ maxLength: 300 }).map(toHex),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
);
const queryMap = fc.dictionary(fc.constantFrom(...PARAMS), paramValue).map((o) => new Map(Object.entries(o)));
const context = fc.record({
  sourceIp: fc.constantFrom("10.0.0.1", "10.0.0.2", "::1"),
  overHttps: fc.boolean(),
  clientCertPaired: fc.boolean(),
});

Deno.test("pairing fuzz: any query map yields an XML reply with a status_code, never a throw", async () => {
  await fc.assert(
    fc.asyncProperty(queryMap, context, async (q, ctx) => {
      const { host, paired } = newHost();
      const pending = host.handle(q, ctx);
      if (host.pinPending()) assertEquals(host.submitPin("0000"), "delivered");
      assertXmlReply(await pending);
      assertEquals(paired, []);
    }),
    { numRuns: 300 },
  );
});

Deno.test("pairing fuzz: interleaved requests, PINs, ticks and cancels keep every reply well-formed", async () => {
  const action = fc.oneof(
    fc.record({ kind: fc.constant("request" as const), query: queryMap, ctx: context }),
    fc.record({ kind: fc.constant("pin" as const), pin: fc.constantFrom("0000", "12a4", "9999") }),
    fc.record({ kind: fc.constant("tick" as const), advanceMs: fc.integer({ min: 0, max: 200_000 }) }),
    fc.record({ kind: fc.constant("cancel" as const), uniqueId: fc.constantFrom("A", "B", "") }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(action, { maxLength: 25 }), async (actions) => {
      let now = 0;
      const { host, paired } = newHost({ now: () => now });
      const replies: Promise<NvReply>[] = [];
      for (const step of actions) {
        if (step.kind === "request") replies.push(host.handle(step.query, step.ctx));
        else if (step.kind === "pin") {
          assertMatch(host.submitPin(step.pin), /^(delivered|no-handshake|invalid-pin)$/);
        } else if (step.kind === "cancel") host.cancel(step.uniqueId);
        else {
          now += step.advanceMs;
          host.tick();
        }
      }
      host.close();
      assertEquals(host.pinPending(), false);
      for (const reply of await Promise.all(replies)) assertXmlReply(reply);
      // Random bytes cannot carry a valid client signature over a fresh client secret.
      assertEquals(paired, []);
    }),
    { numRuns: 200 },
  );
});
