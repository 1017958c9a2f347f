// Section numbers (§) refer to docs/gamestream-protocol.md.
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
  SubmitPinResult,
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

/** A PIN nobody used yet in this file: the host never delivers the same digits twice. */
let pinCounter = 0;
const freshPin = () => String(1000 + pinCounter++).padStart(4, "0");

const kind = (result: SubmitPinResult) => result.kind;

/** The user types `pin` for the only waiting ceremony; it must be delivered. */
function deliver(host: GameStreamPairing, pin = freshPin(), ceremonyId?: string): string {
  assertEquals(kind(host.submitPin(pin, ceremonyId)), "delivered", pin);
  return pin;
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
    assertEquals(this.host.submitPin(hostPin).kind, "delivered");
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
  assertEquals(kind(host.submitPin("5338")), "delivered");
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
  const forgedPin = freshPin();
  const forged = new ManualClient(host, forgedPin);
  await forged.throughPhase3(forgedPin);
  assertEquals(tag((await forged.phase4(impostor.keyPem)).body, "paired"), "0");
  const truncatedPin = freshPin();
  const truncated = new ManualClient(host, truncatedPin);
  await truncated.throughPhase3(truncatedPin);
  const reply = await truncated.send({ clientpairingsecret: toHex(truncated.clientSecret) });
  assertFailure(reply, 400, /too short/);
  assertEquals(paired, []);
});

Deno.test("pairing: submitPin takes 1–16 ASCII digits; 1 and 16 digits pair end to end", async () => {
  const { host, paired } = newHost();
  assertEquals(kind(host.submitPin("1234")), "no-handshake");
  for (
    const pin of ["12a4", "", " 1234", "1234\n", "١٢٣٤", "１２３４", "12345678901234567", "-1", "1.5"]
  ) {
    assertEquals(kind(host.submitPin(pin)), "invalid-pin", JSON.stringify(pin));
  }
  for (const [pin, id] of [["7", "one"], ["1234567890123456", "sixteen"]]) {
    const me = new ManualClient(host, pin, id);
    await me.throughPhase3(pin);
    assertEquals(tag((await me.phase4()).body, "paired"), "1", pin);
  }
  assertEquals(paired.map((c) => c.uniqueId), ["one", "sixteen"]);
});

Deno.test("pairing: every waiting ceremony is listed with an opaque id, device, address, start and expiry", async () => {
  let now = 5_000;
  const { host } = newHost({ now: () => now });
  assertEquals(host.waitingCeremonies(), []);
  const first = new ManualClient(host, "0", "first", { ...HTTP, sourceIp: "10.0.0.1" });
  const heldFirst = first.phase1();
  now += 1_000;
  const heldSecond = new ManualClient(host, "0", "second", { ...HTTP, sourceIp: "10.0.0.2" }).phase1();
  const waiting = host.waitingCeremonies();
  assertEquals(waiting.map((c) => [c.deviceName, c.sourceIp, c.startedMs, c.expiresMs]), [
    ["roth", "10.0.0.1", 5_000, 125_000],
    ["roth", "10.0.0.2", 6_000, 126_000],
  ]);
  for (const ceremony of waiting) assertMatch(ceremony.id, /^[0-9a-f]{24}$/);
  assert(waiting[0].id !== waiting[1].id);
  // An unnamed PIN with two waiting is refused and names both; nobody is answered.
  const ambiguous = host.submitPin("4444");
  assertEquals(ambiguous, { kind: "ambiguous", waiting });
  assert(await isPending(heldFirst) && await isPending(heldSecond));
  // Named, it reaches exactly that ceremony, and the same digits never reach the other.
  assertEquals(host.submitPin("4444", waiting[1].id), { kind: "delivered", ceremony: waiting[1] });
  assertEquals(tag((await heldSecond).body, "paired"), "1");
  assert(await isPending(heldFirst));
  const again = host.submitPin("4444", waiting[0].id);
  assertEquals(again.kind, "refused");
  assertMatch((again as { reason: string }).reason, /already delivered/);
  assert(await isPending(heldFirst));
  assertEquals(host.waitingCeremonies(), [waiting[0]]);
  // With one waiting, an unnamed PIN goes to it (the seed's behaviour).
  deliver(host);
  assertEquals(tag((await heldFirst).body, "paired"), "1");
  assertEquals(kind(host.submitPin(freshPin(), "0".repeat(24))), "unknown-ceremony");
  assertEquals(host.refusals().burnedPin, 1);
});

Deno.test("pairing: a ceremony that received a wrong PIN cannot be completed by re-submitting the right one", async () => {
  const { host, paired } = newHost();
  const right = freshPin();
  const wrong = freshPin();
  const victim = new ManualClient(host, right, "V");
  const held = victim.phase1();
  const [ceremony] = host.waitingCeremonies();
  deliver(host, wrong, ceremony.id);
  await held;
  await victim.phase2();
  await victim.phase3();
  const resubmitted = host.submitPin(right, ceremony.id);
  assertEquals(resubmitted.kind, "refused");
  assertMatch((resubmitted as { reason: string }).reason, /already received a PIN/);
  assertEquals(kind(host.submitPin(right)), "no-handshake");
  assertEquals(tag((await victim.phase4()).body, "paired"), "0");
  const ended = host.submitPin(right, ceremony.id);
  assertMatch((ended as { reason: string }).reason, /has ended: a wrong PIN/);
  // The wrong digits are burned for good; the client starts over with a new phase 1 and pairs.
  const retry = new ManualClient(host, right, "V");
  const held2 = retry.phase1();
  assertEquals(kind(host.submitPin(wrong)), "refused");
  assert(await isPending(held2));
  deliver(host, right);
  await held2;
  await retry.phase2();
  await retry.phase3();
  assertEquals(tag((await retry.phase4()).body, "paired"), "1");
  assertEquals(paired.length, 1);
});

Deno.test("pairing: a ceremony past the PIN gives way to a new phase 1 from its own address only", async () => {
  const { host, paired } = newHost();
  const wrong = freshPin();
  const quitter = new ManualClient(host, "0", "Q", { ...HTTP, sourceIp: "10.0.0.7" });
  const held = quitter.phase1();
  deliver(host, wrong);
  await held;
  await quitter.phase2();
  await quitter.phase3();
  // The client saw the wrong PIN and stopped; another device behind the same address starts pairing.
  const pin = freshPin();
  const stranger = new ManualClient(host, pin, "S", { ...HTTP, sourceIp: "10.0.0.8" });
  const heldStranger = stranger.phase1();
  assertEquals(host.waitingCeremonies().map((c) => c.sourceIp), ["10.0.0.8"]);
  const neighbour = new ManualClient(host, pin, "N", { ...HTTP, sourceIp: "10.0.0.7" });
  const heldNeighbour = neighbour.phase1();
  assertFailure(await quitter.phase4(), 400, /^Invalid uniqueid$/);
  // But a waiting ceremony from that address is not replaced by another uniqueid from it.
  assertFailure(
    await new ManualClient(host, "0", "M", { ...HTTP, sourceIp: "10.0.0.7" }).phase1(),
    503,
    /already in progress/,
  );
  const [, neighbourCeremony] = host.waitingCeremonies();
  deliver(host, pin, neighbourCeremony.id);
  await heldNeighbour;
  await neighbour.phase2();
  await neighbour.phase3();
  assertEquals(tag((await neighbour.phase4()).body, "paired"), "1");
  assertEquals(paired.map((c) => c.uniqueId), ["N"]);
  host.close();
  assertFailure(await heldStranger, 503, /shutting down/);
});

Deno.test("pairing: phases 2–4 from another address are refused and leave the ceremony intact", async () => {
  const { host, paired } = newHost();
  const pin = freshPin();
  const victim = new ManualClient(host, pin, "V", { ...HTTP, sourceIp: "10.0.0.5" });
  const stranger = new ManualClient(host, pin, "V", { ...HTTP, sourceIp: "10.0.0.66" });
  const held = victim.phase1();
  // Out of order from a stranger would have destroyed it; it is simply refused.
  assertFailure(await stranger.phase2(), 400, /^Invalid uniqueid$/);
  assert(await isPending(held));
  deliver(host, pin);
  await held;
  for (const phase of [() => stranger.phase2(), () => stranger.phase3(), () => stranger.phase4()]) {
    assertFailure(await phase(), 400, /^Invalid uniqueid$/);
  }
  assertEquals(tag((await victim.phase2()).body, "paired"), "1");
  assertFailure(await stranger.phase3(), 400, /^Invalid uniqueid$/);
  assertEquals(tag((await victim.phase3()).body, "paired"), "1");
  assertFailure(await stranger.phase4(), 400, /^Invalid uniqueid$/);
  assertEquals(tag((await victim.phase4()).body, "paired"), "1");
  assertEquals(paired.length, 1);
  assertEquals(host.refusals().foreignAddress, 6);
});

Deno.test("pairing: a phase 1 replaces a ceremony only when valid and from the same address", async () => {
  const { host } = newHost();
  const victim = new ManualClient(host, "0", "V", { ...HTTP, sourceIp: "10.0.0.5" });
  const held = victim.phase1();
  const [ceremony] = host.waitingCeremonies();
  const stranger = new ManualClient(host, "0", "V", { ...HTTP, sourceIp: "10.0.0.66" });
  assertFailure(await stranger.phase1(), 409, /in progress from another address/);
  // Malformed phase 1 from the victim's own address: refused, nothing touched.
  const badSalt = host.handle(query({ uniqueid: "V", phrase: "getservercert", salt: "00" }), victim.ctx);
  assertFailure(await badSalt, 400, /Salt too short/);
  const badCert = host.handle(
    query({ uniqueid: "V", phrase: "getservercert", salt: "0".repeat(32), clientcert: "00" }),
    victim.ctx,
  );
  assertFailure(await badCert, 400, /Invalid client certificate/);
  assert(await isPending(held));
  assertEquals(host.waitingCeremonies(), [ceremony]);
  assertEquals(host.refusals().supersedeRefused, 1);
  // A valid one from the same address supersedes: the old request fails, a new ceremony waits.
  const again = victim.phase1();
  assertFailure(await held, 400, /Superseded/);
  const [replacement] = host.waitingCeremonies();
  assert(replacement.id !== ceremony.id);
  const stale = host.submitPin(freshPin(), ceremony.id);
  assertMatch((stale as { reason: string }).reason, /has ended: superseded/);
  deliver(host, freshPin(), replacement.id);
  assertEquals(tag((await again).body, "paired"), "1");
});

Deno.test("pairing: a closed connection ends its waiting ceremony at once and frees the slot", async () => {
  const { host } = newHost();
  const connections = [1, 2, 3, 4].map(() => new AbortController());
  const held = connections.map((connection, i) =>
    new ManualClient(host, "0", `C${i}`, { ...HTTP, sourceIp: `10.0.2.${i}`, closed: connection.signal })
      .phase1()
  );
  const closedIds = host.waitingCeremonies().map((c) => c.id);
  assertEquals(closedIds.length, 4);
  for (const connection of connections) connection.abort();
  for (const reply of await Promise.all(held)) assertFailure(reply, 400, /connection closed/);
  assertEquals(host.waitingCeremonies(), []);
  assertEquals(kind(host.submitPin(freshPin())), "no-handshake", "no PIN is delivered to nobody");
  const named = host.submitPin(freshPin(), closedIds[0]);
  assertMatch((named as { reason: string }).reason, /has ended: its client disconnected/);
  assertEquals(host.refusals().closedWhileWaiting, 4);
  // Four closed connections left the four slots free.
  const live = [5, 6, 7, 8].map((i) =>
    new ManualClient(host, "0", `L${i}`, { ...HTTP, sourceIp: `10.0.2.${i}` }).phase1()
  );
  assertEquals(host.waitingCeremonies().length, 4);
  // A request whose connection is already gone starts nothing.
  const gone = new AbortController();
  gone.abort();
  host.close();
  for (const reply of await Promise.all(live)) assertFailure(reply, 503, /shutting down/);
  const { host: fresh } = newHost();
  const late = new ManualClient(fresh, "0", "G", { ...HTTP, closed: gone.signal }).phase1();
  assertFailure(await late, 400, /connection closed/);
  assertEquals(fresh.waitingCeremonies(), []);
  // Once phase 1 is answered, a later close does not end the ceremony (phases 2–4 use new connections).
  const after = new AbortController();
  const pin = freshPin();
  const me = new ManualClient(fresh, pin, "A", { ...HTTP, closed: after.signal });
  const heldAfter = me.phase1();
  deliver(fresh, pin);
  await heldAfter;
  after.abort();
  assertEquals(tag((await me.phase2()).body, "paired"), "1");
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
  deliver(host);
  await held2;
  assertFailure(await skipping.phase3(), 400, /^Out of order call to serverchallengeresp$/);
  assertFailure(await skipping.phase2(), 400, /^Invalid uniqueid$/);

  const repeating = new ManualClient(host, "1234");
  const held3 = repeating.phase1();
  deliver(host);
  await held3;
  assertEquals(tag((await repeating.phase2()).body, "paired"), "1");
  assertFailure(await repeating.phase2(), 400, /^Out of order call to clientchallenge$/);

  const restarting = new ManualClient(host, "1234");
  const held4 = restarting.phase1();
  deliver(host);
  await held4;
  // A new phase 1 supersedes the ceremony: the old one's later phases find a fresh one held for a PIN.
  const restarted = restarting.phase1();
  assertFailure(await restarting.phase4(), 400, /^Out of order call to clientpairingsecret$/);
  assertFailure(await restarted, 400, /^Out of order call to clientpairingsecret$/);

  const jumping = new ManualClient(host, "1234");
  const held5 = jumping.phase1();
  deliver(host);
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
  deliver(host);
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
    const pin = freshPin();
    const me = new ManualClient(host, pin, "Y");
    const held = me.phase1();
    deliver(host, pin);
    await held;
    if (phase === "serverchallengeresp") await me.phase2();
    assertFailure(await me.send({ [phase]: bad }), 400, /^Invalid /);
    assertFailure(await me.send({ [phase]: bad }), 400, /^Invalid uniqueid$/);
  }
  const pin = freshPin();
  const me = new ManualClient(host, pin, "Z");
  await me.throughPhase3(pin);
  assertFailure(await me.send({ clientpairingsecret: "not hex" }), 400, /not hex/);
  assertFailure(await me.send({ clientpairingsecret: "00" }), 400, /^Invalid uniqueid$/);
});

Deno.test("pairing: caps refuse the fifth ceremony and a second one per address, at once", async () => {
  const { host } = newHost();
  const connections = [1, 2, 3, 4].map(() => new AbortController());
  const held = connections.map((connection, i) =>
    new ManualClient(host, "0", `C${i + 1}`, {
      ...HTTP,
      sourceIp: `10.0.1.${i + 1}`,
      closed: connection.signal,
    })
      .phase1()
  );
  const fifth = new ManualClient(host, "1234", "C5", { ...HTTP, sourceIp: "10.0.1.5" }).phase1();
  assert(!(await isPending(fifth)), "refused without queueing");
  assertFailure(await fifth, 503, /Too many pairing requests/);
  // Ceremonies past the PIN still count.
  const [oldest] = host.waitingCeremonies();
  deliver(host, freshPin(), oldest.id);
  assertEquals(tag((await held[0]).body, "paired"), "1");
  assertFailure(
    await new ManualClient(host, "1234", "C6", { ...HTTP, sourceIp: "10.0.1.6" }).phase1(),
    503,
    /Too/,
  );
  connections[1].abort();
  assertFailure(await held[1], 400, /connection closed/);
  const sameIp = new ManualClient(host, "1234", "C7", { ...HTTP, sourceIp: "10.0.1.3" }).phase1();
  assertFailure(await sameIp, 503, /already in progress/);
  const another = new ManualClient(host, "1234", "C8", { ...HTTP, sourceIp: "10.0.1.8" }).phase1();
  assert(await isPending(another), "a freed slot is usable");
  host.close();
  for (const reply of await Promise.all([...held.slice(2), another])) {
    assertFailure(reply, 503, /shutting down/);
  }
  assertFailure(await new ManualClient(host, "1234", "U2").phase1(), 503, /shutting down/);
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
  assertEquals(kind(host.submitPin(freshPin())), "no-handshake");

  const idle = new ManualClient(host, "1234", "idle");
  const held2 = idle.phase1();
  now += 60_000;
  deliver(host);
  await held2;
  now += 120_001;
  assertFailure(await idle.phase2(), 400, /^Invalid uniqueid$/);

  // Each step restarts the idle clock.
  const pin = freshPin();
  const steady = new ManualClient(host, pin, "steady");
  const held4 = steady.phase1();
  deliver(host, pin);
  await held4;
  now += 100_000;
  assertEquals(tag((await steady.phase2()).body, "paired"), "1");
  now += 100_000;
  assertEquals(tag((await steady.phase3()).body, "paired"), "1");

  const custom = newHost({ now: () => now, pendingTtlMs: 10 }).host;
  const held3 = new ManualClient(custom, "1234").phase1();
  now += 11;
  assertEquals(kind(custom.submitPin("1234")), "no-handshake", "submitPin expires stale ceremonies first");
  assertFailure(await held3, 408, /PIN/);
});

Deno.test("pairing: a delivered PIN stays burned for an hour, then the digits are usable again", async () => {
  let now = 0;
  const { host } = newHost({ now: () => now });
  const first = new ManualClient(host, "0", "A").phase1();
  deliver(host, "2468");
  await first;
  now += 3_600_000;
  const second = new ManualClient(host, "0", "B", { ...HTTP, sourceIp: "10.0.0.3" }).phase1();
  assertEquals(kind(host.submitPin("2468")), "refused");
  now += 1;
  deliver(host, "2468");
  assertEquals(tag((await second).body, "paired"), "1");
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
      if (host.pinPending()) assertEquals(kind(host.submitPin("0000")), "delivered");
      assertXmlReply(await pending);
      assertEquals(paired, []);
    }),
    { numRuns: 300 },
  );
});

Deno.test("pairing property: requests from any addresses, PINs, closes and ticks never deliver one PIN twice or throw", async () => {
  const uniqueId = fc.constantFrom("A", "B", "C");
  const address = fc.constantFrom("10.0.0.1", "10.0.0.2", "10.0.0.3", "::1");
  const validPhase1 = fc.record({ uniqueid: uniqueId, salt: fc.uint8Array({ minLength: 16, maxLength: 16 }) })
    .map(({ uniqueid, salt }) =>
      query({
        uniqueid,
        phrase: "getservercert",
        salt: toHex(salt),
        clientcert: clientCertHex,
        devicename: "d",
      })
    );
  const laterPhase = fc.record({
    uniqueid: uniqueId,
    phase: fc.constantFrom("clientchallenge", "serverchallengeresp", "clientpairingsecret"),
    value: fc.uint8Array({ maxLength: 64 }).map(toHex),
  }).map(({ uniqueid, phase, value }) => query({ uniqueid, [phase]: value }));
  const request = fc.record({
    kind: fc.constant("request" as const),
    query: fc.oneof({ arbitrary: validPhase1, weight: 3 }, laterPhase, queryMap),
    ctx: fc.record({ sourceIp: address, overHttps: fc.boolean(), clientCertPaired: fc.boolean() }),
  });
  const pin = fc.record({
    kind: fc.constant("pin" as const),
    pin: fc.constantFrom("0000", "1234", "9", "5555", "42", "12a4"),
    // Index into the waiting list, or a name nobody was given, or none.
    target: fc.oneof(fc.constant(undefined), fc.nat(4), fc.constant("f".repeat(24))),
  });
  const action = fc.oneof(
    { arbitrary: request, weight: 3 },
    { arbitrary: pin, weight: 3 },
    { arbitrary: fc.record({ kind: fc.constant("close" as const), index: fc.nat(10) }), weight: 1 },
    {
      arbitrary: fc.record({
        kind: fc.constant("tick" as const),
        advanceMs: fc.integer({ min: 0, max: 130_000 }),
      }),
      weight: 1,
    },
  );
  await fc.assert(
    fc.asyncProperty(fc.array(action, { minLength: 4, maxLength: 40 }), async (actions) => {
      let now = 0;
      const { host, paired } = newHost({ now: () => now });
      const replies: Promise<NvReply>[] = [];
      const connections: AbortController[] = [];
      const receivers = new Map<string, Set<string>>();
      for (const step of actions) {
        if (step.kind === "request") {
          const connection = new AbortController();
          connections.push(connection);
          replies.push(host.handle(step.query, { ...step.ctx, closed: connection.signal }));
        } else if (step.kind === "pin") {
          const waiting = host.waitingCeremonies();
          const id = typeof step.target === "number" ? waiting[step.target]?.id : step.target;
          const result = host.submitPin(step.pin, id);
          if (result.kind === "delivered") {
            const seen = receivers.get(step.pin) ?? new Set();
            seen.add(result.ceremony.id);
            receivers.set(step.pin, seen);
            assertEquals(seen.size, 1, `PIN ${step.pin} reached two ceremonies`);
            assert(waiting.some((c) => c.id === result.ceremony.id), "only a waiting ceremony gets a PIN");
            if (id !== undefined) assertEquals(result.ceremony.id, id);
            else assertEquals(waiting.length, 1, "an unnamed PIN goes only to the only waiting ceremony");
          }
          if (result.kind === "ambiguous") assert(id === undefined && result.waiting.length > 1);
        } else if (step.kind === "close") connections[step.index]?.abort();
        else {
          now += step.advanceMs;
          host.tick();
        }
        // Caps count live ceremonies: at most 4 wait, at most one per address.
        const waiting = host.waitingCeremonies();
        assert(waiting.length <= 4);
        assertEquals(new Set(waiting.map((c) => c.sourceIp)).size, waiting.length);
      }
      host.close();
      assertEquals(host.pinPending(), false);
      for (const reply of await Promise.all(replies)) assertXmlReply(reply);
      // Random bytes cannot carry a valid client signature over a fresh client secret.
      assertEquals(paired, []);
    }),
    { numRuns: 300 },
  );
});

Deno.test("pairing: the operator cancels a stranger's held ceremony; its slot is free at once", async () => {
  const { host } = newHost();
  const strangers = [1, 2, 3, 4].map((i) =>
    new ManualClient(host, "0", `S${i}`, { ...HTTP, sourceIp: `10.0.2.${i}` }).phase1()
  );
  const victim = () => new ManualClient(host, "1234", "V", { ...HTTP, sourceIp: "10.0.2.9" }).phase1();
  assertFailure(await victim(), 503, /Too many pairing requests/);
  assertEquals(host.cancelCeremony("no-such-id"), false);
  for (const ceremony of host.waitingCeremonies()) assert(host.cancelCeremony(ceremony.id));
  for (const reply of await Promise.all(strangers)) assertFailure(reply, 400, /cancelled by the host/);
  assertEquals(host.waitingCeremonies(), []);
  const held = victim();
  assert(await isPending(held), "the victim's ceremony waits for its PIN");
  assertEquals(host.waitingCeremonies().map((c) => c.sourceIp), ["10.0.2.9"]);
  host.close();
  assertFailure(await held, 503, /shutting down/);
});
