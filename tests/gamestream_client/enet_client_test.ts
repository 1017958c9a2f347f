import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import {
  decodeDatagram,
  encodeDatagram,
  ENET_CONNECTION_CHANNEL,
  EnetHostPeer,
} from "../../gamestream/mod.ts";
import type { EnetCommand, EnetEvent, EnetOutput } from "../../gamestream/mod.ts";
import { EnetClientPeer } from "./enet_client.ts";
import type { EnetClientEvent, EnetClientOutput } from "./enet_client.ts";

/**
 * Our client and the host peer in one process: datagrams are shuttled through two queues, each crossing
 * dropped with probability `loss` (a seeded generator, so runs repeat), while the clock advances 10 ms a round.
 */
class Link {
  now = 1000;
  readonly host: EnetHostPeer;
  readonly client: EnetClientPeer;
  readonly toHost: Uint8Array[] = [];
  readonly toClient: Uint8Array[] = [];
  readonly hostEvents: EnetEvent[] = [];
  readonly clientEvents: EnetClientEvent[] = [];
  readonly hostDelivered: { channel: number; payload: Uint8Array }[] = [];
  readonly clientDelivered: { channel: number; payload: Uint8Array }[] = [];
  /** When false the host hears nothing and says nothing (it vanished). */
  hostAlive = true;
  #seed: number;

  constructor(readonly loss = 0, seed = 7, client = new EnetClientPeer({ connectId: 0x1234 })) {
    this.host = new EnetHostPeer();
    this.client = client;
    this.#seed = seed;
  }

  #lost(): boolean {
    this.#seed = (Math.imul(this.#seed, 1103515245) + 12345) >>> 0;
    return (this.#seed >>> 8) / 0x1000000 < this.loss;
  }

  fromClient(out: EnetClientOutput): void {
    this.toHost.push(...out.datagrams);
    this.clientEvents.push(...out.events);
    this.clientDelivered.push(...out.delivered);
  }

  /** Runs `rounds` rounds of 10 ms: both peers tick, then every queued datagram crosses (or is lost). */
  pump(rounds: number): void {
    for (let round = 0; round < rounds; round++) {
      this.now += 10;
      this.fromClient(this.client.tick(this.now));
      if (this.hostAlive) this.#fromHost(this.host.tick(this.now));
      for (const d of this.toHost.splice(0)) {
        if (!this.hostAlive || this.#lost()) continue;
        this.#fromHost(this.host.receive(d, this.now));
      }
      for (const d of this.toClient.splice(0)) {
        if (this.#lost()) continue;
        this.fromClient(this.client.receive(d, this.now));
      }
    }
  }

  connect(data = 0xdeadbeef): void {
    this.fromClient(this.client.connect(data, this.now));
    this.pump(300);
    assertEquals(this.client.state, "connected");
    assertEquals(this.host.state, "connected");
  }

  #fromHost(out: EnetOutput): void {
    this.toClient.push(...out.datagramsToSend);
    this.hostEvents.push(...out.events);
    this.hostDelivered.push(...out.delivered);
  }
}

const commandsOf = (datagram: Uint8Array): EnetCommand[] => {
  const decoded = decodeDatagram(datagram);
  assert(decoded.ok);
  return decoded.datagram.commands;
};
const bytes = (length: number, seed: number) => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);

Deno.test("ENet client: CONNECT as Moonlight sends it; connect data arrives in the host's connect event", () => {
  const link = new Link();
  const first = link.client.connect(0xdeadbeef, link.now);
  assertEquals(link.client.state, "connecting");
  assertEquals(first.datagrams.length, 1);
  const decoded = decodeDatagram(first.datagrams[0]);
  assert(decoded.ok);
  assertEquals(decoded.datagram.header.peerId, 0xfff);
  const [connect] = decoded.datagram.commands;
  assert(connect.kind === "connect");
  assertEquals(
    [
      connect.channelId,
      connect.acknowledge,
      connect.channelCount,
      connect.mtu,
      connect.windowSize,
      connect.data,
    ],
    [ENET_CONNECTION_CHANNEL, true, 48, 900, 65536, 0xdeadbeef],
  );
  assertEquals(connect.connectId, 0x1234);
  link.fromClient(first);
  link.pump(50);
  assertEquals(link.clientEvents, ["connected"]);
  assertEquals(link.hostEvents, [{ type: "connect", data: 0xdeadbeef, channelCount: 48, mtu: 900 }]);
  assertEquals([link.client.mtu, link.client.channelCount], [900, 48]);
  assertThrows(() => link.client.connect(1, link.now), /fresh peer/);
});

Deno.test("ENet client ⇄ host under 20 % loss: reliable both ways, in order per channel, fragments both ways", () => {
  const link = new Link(0.2);
  link.connect();
  assertEquals((link.hostEvents[0] as { data: number }).data, 0xdeadbeef);
  const big = bytes(3000, 1);
  const hostBig = bytes(2500, 2);
  for (let i = 0; i < 30; i++) {
    link.fromClient(link.client.send(i % 3, Uint8Array.of(i), link.now));
    if (i === 10) link.fromClient(link.client.send(1, big, link.now));
    assert(link.host.send(0, Uint8Array.of(100 + i), true).ok);
    if (i === 20) assert(link.host.send(0, hostBig, true).ok);
  }
  link.pump(1000);
  for (const channel of [0, 1, 2]) {
    const got = link.hostDelivered.filter((m) => m.channel === channel).map((m) => m.payload);
    const want = Array.from({ length: 10 }, (_, k) => Uint8Array.of(channel + 3 * k));
    if (channel === 1) want.splice(4, 0, big); // sent right after message 10, the 4th on channel 1
    assertEquals(got, want, `channel ${channel}`);
  }
  const clientGot = link.clientDelivered.map((m) => m.payload);
  const clientWant = Array.from({ length: 30 }, (_, i) => Uint8Array.of(100 + i));
  clientWant.splice(21, 0, hostBig);
  assertEquals(clientGot, clientWant);
  assert(link.clientDelivered.every((m) => m.channel === 0));
  assertEquals(link.client.unacknowledged, 0);
  assert(link.client.stats.retransmissions > 0, "20 % loss must have cost retransmissions");
  assertEquals([link.client.state, link.host.state], ["connected", "connected"]);
});

Deno.test("ENet client: large messages leave as 872-byte fragments in datagrams of at most 900 bytes", () => {
  const link = new Link();
  link.connect();
  const out = link.client.send(5, bytes(5000, 3), link.now);
  assert(out.datagrams.every((d) => d.length <= 900));
  const fragments = out.datagrams.flatMap(commandsOf).filter((c) => c.kind === "send_fragment");
  assertEquals(fragments.map((f) => f.payload.length), [872, 872, 872, 872, 872, 640]);
  assertEquals(new Set(fragments.map((f) => f.startSequenceNumber)).size, 1);
  link.fromClient(out);
  link.pump(20);
  assertEquals(link.hostDelivered, [{ channel: 5, payload: bytes(5000, 3) }]);
  assertThrows(() => link.client.send(48, Uint8Array.of(1), link.now), /channel 48/);
  assertThrows(() => link.client.send(0, new Uint8Array(64 * 1024 + 1), link.now), /payload/);
});

Deno.test("ENet client: unreliable and unsequenced both ways, duplicates delivered once", () => {
  const link = new Link();
  link.connect();
  // Host → client, each datagram delivered twice.
  assert(link.host.send(2, Uint8Array.of(1), false).ok);
  assert(link.host.sendUnsequenced(3, Uint8Array.of(2)).ok);
  assert(link.host.send(2, Uint8Array.of(3), false).ok);
  const datagrams = link.host.tick(link.now).datagramsToSend;
  for (const d of datagrams) {
    link.fromClient(link.client.receive(d, link.now));
    link.fromClient(link.client.receive(d, link.now));
  }
  assertEquals(link.clientDelivered, [
    { channel: 2, payload: Uint8Array.of(1) },
    { channel: 3, payload: Uint8Array.of(2) },
    { channel: 2, payload: Uint8Array.of(3) },
  ]);
  // An older unreliable message arriving late is dropped (sequence 1 after 2).
  const late = link.client.receive(datagrams[0], link.now);
  assertEquals(late.delivered, []);
  // Client → host.
  link.fromClient(link.client.send(4, Uint8Array.of(7), link.now, "unreliable"));
  link.fromClient(link.client.send(4, Uint8Array.of(8), link.now, "unsequenced"));
  const sent = link.toHost.flatMap(commandsOf);
  assertEquals(sent.map((c) => [c.kind, c.acknowledge]), [["send_unreliable", false], [
    "send_unsequenced",
    false,
  ]]);
  link.pump(2);
  assertEquals(link.hostDelivered, [{ channel: 4, payload: Uint8Array.of(7) }, {
    channel: 4,
    payload: Uint8Array.of(8),
  }]);
  assertEquals(link.client.unacknowledged, 0);
});

Deno.test("ENet client: an idle connection survives on pings; a vanished host times out after 10 s", () => {
  const link = new Link(0.05, 3);
  link.connect();
  link.pump(3000); // 30 s of silence at the application level
  assertEquals([link.client.state, link.host.state], ["connected", "connected"]);
  assertEquals(link.hostEvents.filter((e) => e.type === "disconnect"), []);
  link.hostAlive = false;
  link.toClient.length = 0;
  const before = link.now;
  while (link.client.state === "connected" && link.now - before < 20_000) link.pump(1);
  assertEquals(link.client.state, "disconnected");
  assertEquals(link.client.disconnectCause, "timeout");
  assertEquals(link.clientEvents.at(-1), "disconnected");
  assert(
    link.now - before >= 10_000 && link.now - before < 12_000,
    `timed out after ${link.now - before} ms`,
  );
  assertThrows(() => link.client.send(0, Uint8Array.of(1), link.now), /disconnected/);
});

Deno.test("ENet client: CONNECT is retransmitted with back-off and abandoned after the timeout", () => {
  const link = new Link();
  link.hostAlive = false;
  link.fromClient(link.client.connect(1, link.now));
  const sentAt: number[] = [];
  for (let round = 0; round < 1200 && link.client.state === "connecting"; round++) {
    link.now += 10;
    const out = link.client.tick(link.now);
    if (out.datagrams.length > 0) sentAt.push(link.now);
    link.fromClient(out);
  }
  assertEquals(link.client.state, "disconnected");
  assertEquals(link.client.disconnectCause, "timeout");
  const gaps = sentAt.slice(1).map((t, i) => t - sentAt[i]);
  assert(sentAt.length >= 3, `${sentAt.length} retransmissions`);
  assert(gaps.every((g, i) => i === 0 || g >= gaps[i - 1]), `gaps ${gaps} must not shrink`);
});

Deno.test("ENet client: graceful disconnect both ways; data sent before a host disconnect arrives first", () => {
  const link = new Link(0.1, 11);
  link.connect();
  link.fromClient(link.client.disconnect(link.now));
  assertEquals(link.client.state, "disconnecting");
  link.pump(300);
  assertEquals(link.client.state, "disconnected");
  assertEquals(link.client.disconnectCause, "local");
  assertEquals(link.hostEvents.at(-1), { type: "disconnect", cause: "peer", data: 0 });

  const second = new Link(0.1, 12);
  second.connect();
  assert(second.host.send(0, Uint8Array.of(0x09, 0x01), true).ok); // a termination message
  second.host.disconnect();
  second.pump(300);
  assertEquals(second.clientDelivered.map((m) => [...m.payload]), [[0x09, 0x01]]);
  assertEquals(second.clientEvents, ["connected", "disconnected"]);
  assertEquals(second.client.disconnectCause, "peer");
  assertEquals(second.hostEvents.at(-1)?.type, "disconnect");

  const third = new Link();
  third.connect();
  const now = third.client.disconnectNow(third.now);
  assertEquals(third.client.state, "disconnected");
  assertEquals(now.datagrams.flatMap(commandsOf).map((c) => [c.kind, c.acknowledge]), [[
    "disconnect",
    false,
  ]]);
  third.fromClient(now);
  third.pump(1);
  assertEquals(third.hostEvents.at(-1), { type: "disconnect", cause: "peer", data: 0 });
});

Deno.test("ENet client: a lost VERIFY_CONNECT acknowledgement is repaired; a foreign VERIFY_CONNECT is refused", () => {
  const link = new Link();
  link.fromClient(link.client.connect(5, link.now));
  link.pump(1); // CONNECT → host, VERIFY_CONNECT → client, client's ack queued towards the host
  assertEquals(link.client.state, "connected");
  link.toHost.length = 0; // the acknowledgement is lost
  assertEquals(link.host.state, "acknowledging_connect");
  link.pump(200); // the host retransmits VERIFY_CONNECT, the connected client acknowledges it again
  assertEquals(link.host.state, "connected");
  assertEquals(link.hostEvents, [{ type: "connect", data: 5, channelCount: 48, mtu: 900 }]);

  const client = new EnetClientPeer({ connectId: 1 });
  const connect = commandsOf(client.connect(0, 0).datagrams[0])[0];
  assert(connect.kind === "connect");
  const verify = (connectId: number) =>
    encodeDatagram({ peerId: 0, sessionId: 1, sentTime: 5 }, [{
      ...connect,
      kind: "verify_connect",
      outgoingPeerId: 3,
      incomingSessionId: 1,
      outgoingSessionId: 2,
      connectId,
    } as EnetCommand]);
  const refused = client.receive(verify(2), 10);
  assertEquals([client.state, client.disconnectCause, refused.events], ["disconnected", "refused", [
    "disconnected",
  ]]);
  const accepted = new EnetClientPeer({ connectId: 1 });
  accepted.connect(0, 0);
  const out = accepted.receive(verify(1), 10);
  assertEquals(out.events, ["connected"]);
  const ack = decodeDatagram(out.datagrams[0]);
  assert(ack.ok);
  assertEquals([ack.datagram.header.peerId, ack.datagram.header.sessionId], [3, 2]);
  assertEquals(ack.datagram.commands[0].kind, "acknowledge");
});

Deno.test("ENet client fuzz: random and mutated datagrams never throw, and output stays within the MTU", () => {
  const link = new Link();
  link.connect();
  assert(link.host.send(1, bytes(2000, 4), true).ok);
  assert(link.host.sendUnsequenced(2, Uint8Array.of(1)).ok);
  const valid = link.host.tick(link.now).datagramsToSend;
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.tuple(fc.constantFrom(...valid), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([d, at, v]) => {
          const copy = d.slice();
          copy[at % copy.length] = v;
          return copy;
        }),
      ),
      (datagram) => {
        const client = new EnetClientPeer({ connectId: 0x1234 });
        const twin = new Link(0, 1, client);
        twin.connect();
        for (const out of [client.receive(datagram, twin.now), client.tick(twin.now + 600)]) {
          assert(out.datagrams.every((d) => d.length <= 900));
        }
      },
    ),
    { numRuns: 300 },
  );
});
