import fc from "fast-check";
import { assert, assertEquals } from "../tests/assert.ts";
import { decodeDatagram, type EnetCommand, type EnetHeader } from "./enet_codec.ts";
import {
  ENET_MAX_BUFFERED_INCOMING_BYTES,
  type EnetDelivery,
  EnetReliability,
  type EnetSendMode,
  type EnetTimeoutPolicy,
} from "./enet_reliability.ts";

const HEADER = { peerId: 1, sessionId: 0 };
const acceptAll = (_: EnetHeader) => true;
const never = () => false;

/** Two ends with `channels` open; `carry` decodes nothing itself, it hands datagrams over as bytes. */
function pair(channels = 4) {
  const sender = new EnetReliability();
  const receiver = new EnetReliability();
  sender.openChannels(channels);
  receiver.openChannels(channels);
  const delivered: EnetDelivery[] = [];
  const into = (end: EnetReliability, out: EnetDelivery[]) => (bytes: Uint8Array, nowMs: number) =>
    end.receiveDatagram(bytes, nowMs, acceptAll, (command) => {
      if (command.kind === "acknowledge") {
        end.acknowledge(command, nowMs);
        return "skip";
      }
      return end.receiveData(command, out);
    }, never);
  return { sender, receiver, delivered, toReceiver: into(receiver, delivered), toSender: into(sender, []) };
}

const flushed = (end: EnetReliability, nowMs: number) => {
  const datagrams: Uint8Array[] = [];
  end.flush(nowMs, HEADER, datagrams);
  return datagrams;
};

const commandsOf = (datagram: Uint8Array): EnetCommand[] => {
  const decoded = decodeDatagram(datagram);
  assert(decoded.ok);
  return decoded.datagram.commands;
};

Deno.test("reliability: the first RTT sample is taken as is; unacknowledged commands back off by doubling", () => {
  const { sender, receiver, toReceiver, toSender } = pair();
  const policy: EnetTimeoutPolicy = { limit: 32, minimumMs: 5000, maximumMs: 30000 };
  assert(sender.queueMessage(0, Uint8Array.of(1), "reliable").ok);
  const [first] = flushed(sender, 1000);
  toReceiver(first, 1020);
  for (const ack of flushed(receiver, 1020)) toSender(ack, 1040); // 40 ms round trip
  assertEquals([sender.roundTripMs, sender.unacknowledged], [40, 0]);

  // Nothing acknowledges the next one: resends at rtt + 4·variance = 40 + 4·20.5 = 122 ms, then 244, 488, …
  assert(sender.queueMessage(0, Uint8Array.of(2), "reliable").ok);
  flushed(sender, 2000);
  const sentAt: number[] = [];
  for (let now = 2001; now < 4000; now++) {
    assertEquals(sender.service(now, policy, null), "ok");
    if (flushed(sender, now).length > 0) sentAt.push(now - 2000);
  }
  assertEquals(sentAt, [122, 122 + 244, 122 + 244 + 488, 122 + 244 + 488 + 976]);
  assertEquals(sender.retransmissions, 4);
});

Deno.test("reliability: the timeout policy follows enet_peer_timeout (maximum always; limit and minimum together)", () => {
  const timedOutAfter = (policy: EnetTimeoutPolicy) => {
    const end = new EnetReliability();
    end.sendConnectionCommand({ kind: "ping" });
    flushed(end, 0);
    for (let now = 1; now <= 60_000; now++) {
      if (end.service(now, policy, null) === "timeout") return now;
      flushed(end, now);
    }
    return -1;
  };
  // Without an RTT sample the sends fall at 0, 500, 1500, 3500, 7500, 15500 ms (500 ms doubling).
  // Moonlight's client: limit 2, minimum = maximum = 10 s.
  assertEquals(timedOutAfter({ limit: 2, minimumMs: 10_000, maximumMs: 10_000 }), 10_000);
  // The 3rd send is overdue at 3500 ms after 2 back-offs (2² ≥ 4) and past the minimum: gone.
  assertEquals(timedOutAfter({ limit: 4, minimumMs: 1000, maximumMs: 30_000 }), 3500);
  // Same limit, higher minimum: the next overdue point after 5 s decides.
  assertEquals(timedOutAfter({ limit: 4, minimumMs: 5000, maximumMs: 30_000 }), 7500);
  // ENet's defaults (32 / 5 s / 30 s): the limit would be reached at 31.5 s, so the maximum decides.
  assertEquals(timedOutAfter({ limit: 32, minimumMs: 5000, maximumMs: 30_000 }), 30_000);
});

Deno.test("reliability: pings only an idle, quiet peer", () => {
  const end = new EnetReliability();
  end.openChannels(1);
  end.noteReceive(0);
  const policy = { limit: 32, minimumMs: 5000, maximumMs: 30000 };
  end.service(499, policy, { intervalMs: 500 });
  assertEquals(flushed(end, 499), []);
  end.service(500, policy, null); // the peer says it may not ping (not connected)
  assertEquals(flushed(end, 500), []);
  end.service(500, policy, { intervalMs: 500 });
  assertEquals(flushed(end, 500).flatMap(commandsOf).map((c) => c.kind), ["ping"]);
  end.service(900, policy, { intervalMs: 500 }); // the ping is unacknowledged (not yet due again): no second one
  assertEquals(flushed(end, 900), []);
});

const message = fc.record({
  channel: fc.integer({ min: 0, max: 3 }),
  length: fc.integer({ min: 4, max: 3000 }),
  mode: fc.constantFrom<EnetSendMode>("reliable", "unreliable", "unsequenced"),
});

Deno.test("reliability property: scrambled, repeated datagrams deliver each reliable message once, in order", () => {
  fc.assert(
    fc.property(
      fc.array(message, { minLength: 1, maxLength: 30 }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 200 }),
      (messages, randomness) => {
        const { sender, receiver, delivered, toReceiver } = pair();
        // Each payload starts with its index, so every delivery names the message it is.
        messages.forEach((m, index) => {
          const payload = new Uint8Array(m.length).fill(index);
          new DataView(payload.buffer).setUint32(0, index);
          assert(sender.queueMessage(m.channel, payload, m.mode).ok);
        });
        const datagrams = flushed(sender, 0);
        assert(datagrams.every((d) => d.length <= sender.mtu));
        // Every datagram arrives at least once, every third twice, in a scrambled order.
        const arrivals = [
          ...datagrams,
          ...datagrams.filter((_, i) => randomness[i % randomness.length] % 3 === 0),
        ];
        for (let i = arrivals.length - 1; i > 0; i--) {
          const j = randomness[i % randomness.length] % (i + 1);
          [arrivals[i], arrivals[j]] = [arrivals[j], arrivals[i]];
        }
        for (const d of arrivals) toReceiver(d, 0);
        const indexOf = (d: EnetDelivery) =>
          new DataView(d.payload.buffer, d.payload.byteOffset).getUint32(0);
        const got = delivered.map(indexOf);
        assertEquals(new Set(got).size, got.length, "nothing is delivered twice");
        // As in ENet, a payload that needs fragments travels reliably whatever the mode.
        const reliable = messages.map((m) => m.mode === "reliable" || m.length > sender.mtu - 4 - 24);
        for (let channel = 0; channel < 4; channel++) {
          const expected = messages.flatMap((m, i) => m.channel === channel && reliable[i] ? [i] : []);
          const gotReliable = delivered.filter((d) => d.channel === channel && reliable[indexOf(d)]).map(
            indexOf,
          );
          assertEquals(gotReliable, expected, `channel ${channel}`);
        }
        for (const d of delivered) assertEquals(d.payload.length, messages[indexOf(d)].length);
        assertEquals(receiver.bufferedIncomingBytes, 0, "everything complete was released");
      },
    ),
    { numRuns: 150 },
  );
});

Deno.test("reliability fuzz: arbitrary datagrams into open channels never throw and keep buffers bounded", () => {
  const end = new EnetReliability();
  end.openChannels(48);
  const delivered: EnetDelivery[] = [];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 900 }), fc.nat({ max: 0xffff }), (bytes, nowMs) => {
      end.receiveDatagram(bytes, nowMs, acceptAll, (command) => end.receiveData(command, delivered), never);
      end.service(nowMs, { limit: 32, minimumMs: 5000, maximumMs: 30000 }, { intervalMs: 500 });
      flushed(end, nowMs);
      assert(end.bufferedIncomingBytes >= 0 && end.bufferedIncomingBytes <= ENET_MAX_BUFFERED_INCOMING_BYTES);
      assertEquals(end.pendingAcknowledgements, 0);
    }),
    { numRuns: 3000 },
  );
});
