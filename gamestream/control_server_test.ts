import fc from "fast-check";
import { assert, assertEquals } from "../tests/assert.ts";
import { EnetClientPeer } from "../tests/gamestream_client/enet_client.ts";
import { CONTROL_TYPE, ControlCipher, idrRequestPayload, periodicPingPayload } from "./control.ts";
import { ControlEndpoint, controlRemote, MAX_PEERS_PER_IP } from "./control_server.ts";
import type { ControlRemote, ControlSessionHandler } from "./control_server.ts";
import { encodeDatagram, parseConnectRequest } from "./enet.ts";
import { Logger } from "../host/log.ts";

const KEY = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
const CONNECT_DATA = 0x1234abcd;
const OWNER_IP = "127.0.0.1";
const OWNER: ControlRemote = { ip: OWNER_IP, port: 50_000 };

/** A host endpoint that admits the owner's IP with the session's connect data, as GameStreamHost does. */
function hostUnderTest(logLines: string[] = []) {
  const outbox: { datagram: Uint8Array; to: ControlRemote }[] = [];
  const messages: { type: number; payload: Uint8Array }[] = [];
  const closed: string[] = [];
  let bound = 0;
  const admit = (data: number, remote: ControlRemote) =>
    data === CONNECT_DATA && remote.ip === OWNER_IP && bound === 0;
  const endpoint = new ControlEndpoint({
    log: new Logger("test", { level: "debug", format: "json", sink: (line) => logLines.push(line) }),
    send: (datagram, to) => outbox.push({ datagram, to }),
    admit,
    accept: (data, remote): ControlSessionHandler | null => {
      if (!admit(data, remote)) return null;
      bound++;
      return {
        key: KEY,
        onMessage: (type, payload) => messages.push({ type, payload }),
        onClosed: (cause) => closed.push(cause),
      };
    },
  });
  return { endpoint, outbox, messages, closed, bound: () => bound };
}

type Host = ReturnType<typeof hostUnderTest>;

/** A Moonlight-like client at `remote`; `exchange` carries datagrams both ways until both sides are quiet. */
function clientAt(host: Host, remote: ControlRemote) {
  const peer = new EnetClientPeer();
  const cipher = new ControlCipher(KEY, "client");
  let now = 1000;
  const exchange = (datagrams: Uint8Array[]) => {
    let toHost = datagrams;
    for (let round = 0; round < 20 && toHost.length > 0; round++) {
      for (const d of toHost) host.endpoint.receive(d, remote, now);
      const replies = host.outbox.splice(0).filter((o) => o.to.ip === remote.ip && o.to.port === remote.port);
      toHost = replies.flatMap((r) => peer.receive(r.datagram, now).datagrams);
      now += 1;
    }
  };
  return {
    peer,
    connect: (data = CONNECT_DATA) => exchange(peer.connect(data, now).datagrams),
    /** Seals and sends; returns the envelope so a test can replay it. */
    send: (type: number, payload: Uint8Array) => {
      const envelope = cipher.seal(type, payload);
      exchange(peer.send(0, envelope, now).datagrams);
      return envelope;
    },
    /** Sends an already-sealed envelope in a fresh ENet command (what an attacker with a capture can do). */
    resend: (envelope: Uint8Array) => exchange(peer.send(1, envelope, now).datagrams),
  };
}

Deno.test("control endpoint: the owner's CONNECT with the connect data binds and delivers messages", () => {
  const host = hostUnderTest();
  const client = clientAt(host, OWNER);
  client.connect();
  assertEquals(client.peer.state, "connected");
  assertEquals(host.bound(), 1);
  client.send(CONTROL_TYPE.IDR_REQUEST, idrRequestPayload());
  assertEquals(host.messages.map((m) => m.type), [CONTROL_TYPE.IDR_REQUEST]);
  assertEquals(host.endpoint.dropped, 0);
});

Deno.test("control endpoint: garbage, non-CONNECT datagrams and wrong connect data create no peer and are counted", () => {
  const host = hostUnderTest();
  // 300 datagrams from 300 address:ports: random bytes, a PING-only datagram, a CONNECT with the wrong data.
  for (let i = 0; i < 100; i++) {
    const from = { ip: `127.0.0.${2 + (i % 8)}`, port: 10_000 + i };
    host.endpoint.receive(crypto.getRandomValues(new Uint8Array(1 + (i % 90))), from, 0);
    host.endpoint.receive(
      encodeDatagram({ peerId: 0, sessionId: 0, sentTime: 0 }, [{
        kind: "ping",
        channelId: 0xff,
        reliableSequenceNumber: 1,
        acknowledge: true,
        unsequenced: false,
      }]),
      { ...from, port: from.port + 20_000 },
      0,
    );
    const wrong = new EnetClientPeer().connect(CONNECT_DATA ^ 1, 0).datagrams;
    for (const d of wrong) host.endpoint.receive(d, { ip: OWNER_IP, port: 1000 + i }, 0);
  }
  assertEquals(host.endpoint.peerCount, 0);
  assertEquals(host.outbox.length, 0, "nothing is answered");
  const stats = host.endpoint.stats;
  assertEquals(stats.strayDatagrams, 200);
  assertEquals(stats.refusedConnects, 100);
  // The real client still connects at once.
  const client = clientAt(host, OWNER);
  client.connect();
  assertEquals(client.peer.state, "connected");
  assertEquals(host.bound(), 1);
});

Deno.test("control endpoint: a stranger with the leaked connect data is refused and does not lock the owner out", () => {
  const host = hostUnderTest();
  const stranger = clientAt(host, { ip: "127.0.0.2", port: 50_000 });
  stranger.connect();
  assertEquals(stranger.peer.state, "connecting");
  assertEquals(host.endpoint.peerCount, 0);
  assertEquals(host.endpoint.stats.refusedConnects, 1);
  const owner = clientAt(host, OWNER);
  owner.connect();
  assertEquals(owner.peer.state, "connected");
  assertEquals(host.bound(), 1);
  // A bound session admits nobody else, not even the owner's IP from another port.
  const second = clientAt(host, { ip: OWNER_IP, port: 50_001 });
  second.connect();
  assertEquals(second.peer.state, "connecting");
  assertEquals(host.endpoint.peerCount, 1);
});

Deno.test("control endpoint: half-open peers from the owner's IP are capped and replaced, never locking it out", () => {
  const host = hostUnderTest();
  // CONNECTs whose VERIFY_CONNECT is never acknowledged (e.g. spoofed source ports).
  for (let port = 1; port <= 10; port++) {
    for (const d of new EnetClientPeer().connect(CONNECT_DATA, 0).datagrams) {
      host.endpoint.receive(d, { ip: OWNER_IP, port }, 0);
    }
    assert(host.endpoint.peerCount <= MAX_PEERS_PER_IP, `${host.endpoint.peerCount} peers`);
  }
  assertEquals(host.endpoint.stats.peerCapEvictions, 10 - MAX_PEERS_PER_IP);
  const owner = clientAt(host, OWNER);
  owner.connect();
  assertEquals(owner.peer.state, "connected");
  assertEquals(host.bound(), 1);
  // The bound peer survives further half-open CONNECTs.
  for (let port = 11; port <= 20; port++) {
    for (const d of new EnetClientPeer().connect(CONNECT_DATA, 0).datagrams) {
      host.endpoint.receive(d, { ip: OWNER_IP, port }, 0);
    }
  }
  owner.send(CONTROL_TYPE.PERIODIC_PING, periodicPingPayload());
  assertEquals(host.messages.length, 1);
  assertEquals(host.closed, []);
});

Deno.test("control endpoint: a replayed or forged envelope changes nothing and the session continues", () => {
  const host = hostUnderTest();
  const client = clientAt(host, OWNER);
  client.connect();
  const captured = client.send(CONTROL_TYPE.IDR_REQUEST, idrRequestPayload());
  assertEquals(host.messages.length, 1);
  client.resend(captured);
  client.resend(captured);
  assertEquals(host.messages.length, 1, "replays are not delivered");
  assertEquals(host.endpoint.stats.replayedMessages, 2);
  const forged = captured.slice();
  forged[forged.length - 1] ^= 0x01;
  client.resend(forged);
  assertEquals(host.endpoint.stats.forgedMessages, 1);
  assertEquals(host.closed, [], "a forged envelope does not end the session");
  client.send(CONTROL_TYPE.PERIODIC_PING, periodicPingPayload());
  assertEquals(host.messages.map((m) => m.type), [CONTROL_TYPE.IDR_REQUEST, CONTROL_TYPE.PERIODIC_PING]);
});

Deno.test("control endpoint: a flood of refused CONNECTs logs at counts 1, 2, 4, …, never per datagram", () => {
  const lines: string[] = [];
  const host = hostUnderTest(lines);
  const connect = new EnetClientPeer().connect(CONNECT_DATA, 0).datagrams[0];
  for (let port = 1; port <= 100; port++) host.endpoint.receive(connect, { ip: "127.0.0.2", port }, 0);
  assertEquals(host.endpoint.stats.refusedConnects, 100);
  const refusals = lines.filter((line) => line.includes("control connect refused"));
  assertEquals(refusals.map((line) => JSON.parse(line).refused), [1, 2, 4, 8, 16, 32, 64]);
});

Deno.test("controlRemote writes IPv4-mapped addresses as IPv4", () => {
  assertEquals(controlRemote("::ffff:192.168.1.7", 9), { ip: "192.168.1.7", port: 9 });
  assertEquals(controlRemote("fe80::1", 9), { ip: "fe80::1", port: 9 });
});

/** Random bytes, or a real CONNECT carrying the session's or some other connect data. */
const datagrams = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.oneof(fc.constant(CONNECT_DATA), fc.integer({ min: 0, max: 0xffffffff })).map((data) =>
    new EnetClientPeer().connect(data, 0).datagrams[0]
  ),
);

const remotes = fc.record({
  ip: fc.constantFrom(OWNER_IP, "127.0.0.2", "10.1.2.3", "fe80::1"),
  port: fc.integer({ min: 1, max: 65_535 }),
});

Deno.test("control endpoint property: arbitrary datagrams never throw; a peer exists only after an admitted CONNECT", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(datagrams, remotes), { maxLength: 40 }),
      (inputs) => {
        const host = hostUnderTest();
        let admittedConnects = 0;
        for (const [bytes, remote] of inputs) {
          const request = parseConnectRequest(bytes);
          if (request?.connectData === CONNECT_DATA && remote.ip === OWNER_IP) admittedConnects++;
          host.endpoint.receive(bytes, remote, 0);
          host.endpoint.tick(5);
        }
        assert(host.endpoint.peerCount <= Math.min(admittedConnects, MAX_PEERS_PER_IP));
        assert(host.outbox.every((o) => o.to.ip === OWNER_IP), "only the owner's IP is ever answered");
        if (admittedConnects === 0) assertEquals(host.outbox.length, 0);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("control endpoint property: arbitrary datagrams from the bound owner's address never throw or end it", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 30 }), (datagrams) => {
      const host = hostUnderTest();
      const client = clientAt(host, OWNER);
      client.connect();
      for (const bytes of datagrams) host.endpoint.receive(bytes, OWNER, 2000);
      assertEquals(host.messages.length, 0, "no message without the key");
      assertEquals(host.endpoint.peerCount, 1);
    }),
    { numRuns: 200 },
  );
});
