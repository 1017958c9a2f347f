/**
 * The client end of an ENet 1.3 connection as Moonlight's control stream uses it (docs/gamestream-protocol.md
 * §6.1): CONNECT with 48 channels, MTU 900 and the connect data; VERIFY_CONNECT; reliable messages per
 * channel in order, fragmented above the MTU, retransmitted with back-off until acknowledged;
 * acknowledgements, in-order delivery and reassembly of what the host sends; unreliable and unsequenced data;
 * pings; disconnect and timeout.
 *
 * Pure, like `EnetHostPeer`: the caller owns the socket and the clock, feeds datagrams to `receive`, calls `tick`
 * every few milliseconds, and sends the datagrams every call returns. The wire codec is gamestream/enet.ts.
 */
import {
  decodeDatagram,
  encodeDatagram,
  encodedCommandSize,
  ENET_CONNECTION_CHANNEL,
  ENET_MAX_BUFFERED_INCOMING_BYTES,
  ENET_MAX_BUFFERED_INCOMING_COMMANDS,
  ENET_MAX_FRAGMENT_COUNT,
  ENET_MAX_OUTGOING_BYTES,
  ENET_MAX_PACKET_BYTES,
  ENET_MAXIMUM_CHANNEL_COUNT,
  ENET_MAXIMUM_MTU,
  ENET_MAXIMUM_PEER_ID,
  ENET_MAXIMUM_WINDOW_SIZE,
  ENET_MINIMUM_MTU,
  ENET_MOONLIGHT_CHANNEL_COUNT,
  ENET_MOONLIGHT_MTU,
  ENET_PING_INTERVAL_MS,
} from "../../gamestream/mod.ts";
import type { EnetCommand, EnetDelivery, EnetHeader } from "../../gamestream/mod.ts";

/** Moonlight's `enet_peer_timeout(peer, 2, 10000, 10000)`: give up after 10 s without an acknowledgement. */
export const ENET_CLIENT_TIMEOUT_MS = 10_000;
/** ENET_PEER_DEFAULT_ROUND_TRIP_TIME: the first retransmission waits this long. */
const INITIAL_ROUND_TRIP_MS = 500;
/** A same-millisecond loopback would otherwise give a zero retransmission timeout. */
const MINIMUM_RETRANSMIT_MS = 10;
const MAX_RELIABLE_IN_FLIGHT = 256;
const HEADER_SIZE_WITH_TIME = 4;
const FRAGMENT_COMMAND_SIZE = 24;
const UNSEQUENCED_WINDOW_SIZE = 1024;
const FREE_UNSEQUENCED_WINDOWS = 32;
/** ENet's packet-throttle defaults; the host echoes them in VERIFY_CONNECT and we check the echo. */
const THROTTLE = { interval: 5000, acceleration: 2, deceleration: 2 } as const;

export interface EnetClientOptions {
  /** Channels asked for in CONNECT (Moonlight: 48); the host may grant fewer. */
  channelCount?: number;
  mtu?: number;
  /** Identifies this connection attempt; random when omitted. */
  connectId?: number;
  timeoutMs?: number;
  pingIntervalMs?: number;
}

export type EnetClientState = "idle" | "connecting" | "connected" | "disconnecting" | "disconnected";
export type EnetClientEvent = "connected" | "disconnected";
/** Why the peer reached "disconnected": the host said so, we did, nothing was acknowledged, or a bad verify. */
export type EnetClientDisconnectCause = "peer" | "local" | "timeout" | "refused";
/** Reliable is ordered and acknowledged; unreliable is ordered, may be lost; unsequenced may also reorder. */
export type EnetSendMode = "reliable" | "unreliable" | "unsequenced";

export interface EnetClientOutput {
  datagrams: Uint8Array[];
  delivered: EnetDelivery[];
  events: EnetClientEvent[];
}

export interface EnetClientStats {
  datagramsDropped: number;
  retransmissions: number;
  roundTripMs: number;
}

type Pending =
  | { kind: "message"; payload: Uint8Array }
  | { kind: "fragments"; fragmentCount: number; received: Uint8Array; remaining: number; buffer: Uint8Array };

interface IncomingChannel {
  reliableSequence: number;
  unreliableSequence: number;
  pending: Map<number, Pending>;
}

interface Outgoing {
  command: EnetCommand;
  size: number;
  firstSentMs: number | null;
  lastSentMs: number;
  retransmitTimeoutMs: number;
}

type Verdict = "ack" | "skip" | "stop";

const seqAfter = (a: number, b: number): number => (a - b) & 0xffff;
const clamp = (value: number, low: number, high: number) => Math.min(high, Math.max(low, value));

export class EnetClientPeer {
  #state: EnetClientState = "idle";
  #disconnectCause: EnetClientDisconnectCause | null = null;
  readonly #requestedChannels: number;
  readonly #timeoutMs: number;
  readonly #pingIntervalMs: number;
  readonly #connectId: number;
  #mtu: number;
  #channelCount: number;

  /** Our own peer slot; the host addresses its datagrams to it. */
  readonly #incomingPeerId = 0;
  #outgoingPeerId = ENET_MAXIMUM_PEER_ID;
  #incomingSessionId = 0xff;
  #outgoingSessionId = 0xff;

  #connectionSequence = 0;
  #outgoingReliable: number[] = [];
  #outgoingUnreliable: number[] = [];
  #outgoingUnsequencedGroup = 0;
  #incoming: IncomingChannel[] = [];
  #bufferedIncomingBytes = 0;
  #bufferedIncomingCommands = 0;
  #unsequencedBase = 0;
  #unsequencedWindow = new Uint32Array(UNSEQUENCED_WINDOW_SIZE / 32);

  #acks: EnetCommand[] = [];
  #queued: Outgoing[] = [];
  #inFlight: Outgoing[] = [];
  #outgoingBytes = 0;
  #lastReceiveMs = 0;
  #roundTripMs = INITIAL_ROUND_TRIP_MS;
  #roundTripVarianceMs = 0;
  #roundTripSampled = false;
  #stats = { datagramsDropped: 0, retransmissions: 0 };

  constructor(options: EnetClientOptions = {}) {
    this.#requestedChannels = options.channelCount ?? ENET_MOONLIGHT_CHANNEL_COUNT;
    if (
      !Number.isInteger(this.#requestedChannels) || this.#requestedChannels < 1 ||
      this.#requestedChannels > ENET_MAXIMUM_CHANNEL_COUNT
    ) {
      throw new RangeError(
        `channelCount ${this.#requestedChannels} outside 1..${ENET_MAXIMUM_CHANNEL_COUNT}`,
      );
    }
    this.#channelCount = this.#requestedChannels;
    this.#mtu = clamp(options.mtu ?? ENET_MOONLIGHT_MTU, ENET_MINIMUM_MTU, ENET_MAXIMUM_MTU);
    this.#connectId = (options.connectId ?? Math.floor(Math.random() * 0x1_0000_0000)) >>> 0;
    this.#timeoutMs = options.timeoutMs ?? ENET_CLIENT_TIMEOUT_MS;
    this.#pingIntervalMs = options.pingIntervalMs ?? ENET_PING_INTERVAL_MS;
  }

  get state(): EnetClientState {
    return this.#state;
  }

  get disconnectCause(): EnetClientDisconnectCause | null {
    return this.#disconnectCause;
  }

  /** Negotiated after VERIFY_CONNECT: the smaller of ours and the host's. */
  get mtu(): number {
    return this.#mtu;
  }

  get channelCount(): number {
    return this.#channelCount;
  }

  get stats(): Readonly<EnetClientStats> {
    return { ...this.#stats, roundTripMs: this.#roundTripMs };
  }

  /** Reliable commands sent and not yet acknowledged, plus any waiting for a free in-flight slot. */
  get unacknowledged(): number {
    return this.#inFlight.length + this.#queued.filter((q) => q.command.acknowledge).length;
  }

  connect(data: number, nowMs: number): EnetClientOutput {
    if (this.#state !== "idle") throw new Error(`ENet client is ${this.#state}; connect needs a fresh peer`);
    this.#state = "connecting";
    this.#lastReceiveMs = nowMs;
    this.#enqueue({
      ...this.#connectionHeader(),
      kind: "connect",
      data: data >>> 0,
      outgoingPeerId: this.#incomingPeerId,
      incomingSessionId: this.#incomingSessionId,
      outgoingSessionId: this.#outgoingSessionId,
      mtu: this.#mtu,
      windowSize: ENET_MAXIMUM_WINDOW_SIZE, // no bandwidth limit, so ENet offers the largest window
      channelCount: this.#requestedChannels,
      incomingBandwidth: 0,
      outgoingBandwidth: 0,
      packetThrottleInterval: THROTTLE.interval,
      packetThrottleAcceleration: THROTTLE.acceleration,
      packetThrottleDeceleration: THROTTLE.deceleration,
      connectId: this.#connectId,
    });
    return this.#flush(nowMs, this.#output());
  }

  /**
   * Sends `payload` on `channel`. Payloads above one datagram are fragmented and sent reliably whatever the
   * mode (as ENet does). Throws when not connected, on a bad channel or size, or when the send queue is full.
   */
  send(
    channel: number,
    payload: Uint8Array,
    nowMs: number,
    mode: EnetSendMode = "reliable",
  ): EnetClientOutput {
    if (this.#state !== "connected") throw new Error(`ENet client is ${this.#state}`);
    if (!Number.isInteger(channel) || channel < 0 || channel >= this.#channelCount) {
      throw new RangeError(`channel ${channel} outside 0..${this.#channelCount - 1}`);
    }
    if (payload.length > ENET_MAX_PACKET_BYTES) throw new RangeError(`payload of ${payload.length} bytes`);
    if (this.#outgoingBytes + payload.length > ENET_MAX_OUTGOING_BYTES) {
      throw new Error("ENet send queue full");
    }
    const base = { channelId: channel, unsequenced: false };
    const fragmentLength = this.#mtu - HEADER_SIZE_WITH_TIME - FRAGMENT_COMMAND_SIZE;
    if (payload.length > fragmentLength) {
      const fragmentCount = Math.ceil(payload.length / fragmentLength);
      const startSequenceNumber = (this.#outgoingReliable[channel] + 1) & 0xffff;
      for (let i = 0; i < fragmentCount; i++) {
        const fragmentOffset = i * fragmentLength;
        this.#enqueue({
          ...base,
          kind: "send_fragment",
          reliableSequenceNumber: this.#nextReliable(channel),
          acknowledge: true,
          startSequenceNumber,
          fragmentCount,
          fragmentNumber: i,
          totalLength: payload.length,
          fragmentOffset,
          payload: payload.slice(fragmentOffset, fragmentOffset + fragmentLength),
        });
      }
    } else if (mode === "reliable") {
      this.#enqueue({
        ...base,
        kind: "send_reliable",
        reliableSequenceNumber: this.#nextReliable(channel),
        acknowledge: true,
        payload: payload.slice(),
      });
    } else if (mode === "unreliable") {
      this.#outgoingUnreliable[channel] = (this.#outgoingUnreliable[channel] + 1) & 0xffff;
      this.#enqueue({
        ...base,
        kind: "send_unreliable",
        reliableSequenceNumber: this.#outgoingReliable[channel],
        acknowledge: false,
        unreliableSequenceNumber: this.#outgoingUnreliable[channel],
        payload: payload.slice(),
      });
    } else { // fits: an unsequenced command's header (8) is smaller than a fragment's (24)
      this.#outgoingUnsequencedGroup = (this.#outgoingUnsequencedGroup + 1) & 0xffff;
      this.#enqueue({
        kind: "send_unsequenced",
        channelId: channel,
        reliableSequenceNumber: 0,
        acknowledge: false,
        unsequenced: true,
        unsequencedGroup: this.#outgoingUnsequencedGroup,
        payload: payload.slice(),
      });
    }
    return this.#flush(nowMs, this.#output());
  }

  /**
   * Graceful disconnect, as `enet_peer_disconnect`: unsent and unacknowledged data is dropped, a reliable
   * DISCONNECT goes out, and "disconnected" follows its acknowledgement (or the timeout). While still
   * connecting there is nobody to tell, so the attempt is just abandoned.
   */
  disconnect(nowMs: number, data = 0): EnetClientOutput {
    const out = this.#output();
    if (this.#state === "connected") {
      this.#dropOutgoing();
      this.#enqueue(this.#connectionCommand({ kind: "disconnect", data: data >>> 0 }));
      this.#state = "disconnecting";
    } else if (this.#state === "connecting" || this.#state === "idle") {
      this.#close("local");
    }
    return this.#flush(nowMs, out);
  }

  /** `enet_peer_disconnect_now`: one unacknowledged DISCONNECT and the peer is closed at once. */
  disconnectNow(nowMs: number, data = 0): EnetClientOutput {
    const out = this.#output();
    if (this.#state === "connected" || this.#state === "disconnecting") {
      this.#dropOutgoing();
      this.#enqueue({
        kind: "disconnect",
        channelId: ENET_CONNECTION_CHANNEL,
        reliableSequenceNumber: 0,
        acknowledge: false,
        unsequenced: true,
        data: data >>> 0,
      });
      this.#flush(nowMs, out);
    }
    if (this.#state !== "disconnected") this.#close("local");
    return out;
  }

  receive(bytes: Uint8Array, nowMs: number): EnetClientOutput {
    const out = this.#output();
    const decoded = decodeDatagram(bytes);
    if (!decoded.ok || !this.#acceptHeader(decoded.datagram.header)) {
      this.#stats.datagramsDropped++;
      return out;
    }
    const { header, commands } = decoded.datagram;
    this.#lastReceiveMs = nowMs;
    for (const command of commands) {
      const verdict = this.#handle(command, nowMs, out);
      if (verdict === "stop") break;
      if (verdict === "ack" && command.acknowledge && header.sentTime !== null) {
        this.#queueAck(command, header.sentTime);
      }
      if (this.#state === "disconnected") break;
    }
    return this.#flush(nowMs, out);
  }

  /** Retransmits overdue reliable commands, pings an idle host and detects the timeout. */
  tick(nowMs: number): EnetClientOutput {
    const out = this.#output();
    if (this.#state === "idle" || this.#state === "disconnected") return out;
    const resend: Outgoing[] = [];
    for (const sent of this.#inFlight) {
      if (nowMs - sent.firstSentMs! >= this.#timeoutMs) {
        this.#close("timeout");
        out.events.push("disconnected");
        return out;
      }
      if (nowMs - sent.lastSentMs < sent.retransmitTimeoutMs) continue;
      sent.retransmitTimeoutMs *= 2;
      resend.push(sent);
    }
    if (resend.length > 0) {
      this.#inFlight = this.#inFlight.filter((c) => !resend.includes(c));
      this.#queued.unshift(...resend);
      this.#stats.retransmissions += resend.length;
    }
    if (
      this.#state === "connected" && this.#inFlight.length === 0 && this.#queued.length === 0 &&
      nowMs - this.#lastReceiveMs >= this.#pingIntervalMs
    ) {
      this.#enqueue(this.#connectionCommand({ kind: "ping" }));
    }
    return this.#flush(nowMs, out);
  }

  // --- incoming ------------------------------------------------------------------------------------------------

  #acceptHeader(header: EnetHeader): boolean {
    if (this.#state === "idle" || this.#state === "disconnected") return false;
    if (header.peerId !== this.#incomingPeerId) return false;
    // Until VERIFY_CONNECT names the sessions there is nothing to compare (ENet skips the check too).
    return this.#outgoingPeerId === ENET_MAXIMUM_PEER_ID || header.sessionId === this.#incomingSessionId;
  }

  #handle(command: EnetCommand, nowMs: number, out: EnetClientOutput): Verdict {
    switch (command.kind) {
      case "verify_connect":
        return this.#handleVerify(command, out);
      case "acknowledge":
        this.#handleAcknowledge(command, nowMs, out);
        return "skip";
      case "disconnect":
        this.#close("peer");
        out.events.push("disconnected");
        return "ack";
      case "connect":
        return "stop"; // we accept no connections
    }
    if (this.#state !== "connected") return "stop"; // like ENet: no data or pings outside the connected state
    switch (command.kind) {
      case "ping":
      case "bandwidth_limit":
      case "throttle_configure":
        return "ack";
    }
    if (command.channelId >= this.#channelCount) return "stop";
    const channel = this.#incoming[command.channelId];
    switch (command.kind) {
      case "send_reliable": {
        const distance = seqAfter(command.reliableSequenceNumber, channel.reliableSequence);
        if (distance === 0 || distance >= 0x8000 || channel.pending.has(command.reliableSequenceNumber)) {
          return "ack"; // a duplicate: acknowledge again, the first acknowledgement may have been lost
        }
        if (!this.#reserve(command.payload.length)) return "skip";
        channel.pending.set(command.reliableSequenceNumber, { kind: "message", payload: command.payload });
        this.#dispatch(command.channelId, out);
        return "ack";
      }
      case "send_fragment":
        return this.#handleFragment(command, channel, out);
      case "send_unreliable": {
        // Unreliable data belongs after the reliable message it names; if that is missing it is dropped (legal).
        const ahead = seqAfter(command.unreliableSequenceNumber, channel.unreliableSequence);
        if (command.reliableSequenceNumber === channel.reliableSequence && ahead > 0 && ahead < 0x8000) {
          channel.unreliableSequence = command.unreliableSequenceNumber;
          out.delivered.push({ channel: command.channelId, payload: command.payload });
        }
        return "skip";
      }
      case "send_unsequenced":
        if (this.#acceptUnsequenced(command.unsequencedGroup)) {
          out.delivered.push({ channel: command.channelId, payload: command.payload });
        }
        return "skip";
      default:
        return "skip"; // unreliable fragments: neither side of GameStream sends them
    }
  }

  #handleVerify(command: Extract<EnetCommand, { kind: "verify_connect" }>, out: EnetClientOutput): Verdict {
    if (this.#state === "connected") return "ack"; // our acknowledgement was lost and the host resent it
    if (this.#state !== "connecting") return "stop";
    if (
      command.connectId !== this.#connectId || command.channelCount < 1 ||
      command.channelCount > ENET_MAXIMUM_CHANNEL_COUNT || command.outgoingPeerId >= ENET_MAXIMUM_PEER_ID ||
      command.packetThrottleInterval !== THROTTLE.interval ||
      command.packetThrottleAcceleration !== THROTTLE.acceleration ||
      command.packetThrottleDeceleration !== THROTTLE.deceleration
    ) {
      this.#close("refused");
      out.events.push("disconnected");
      return "stop";
    }
    this.#dropOutgoing(); // only the CONNECT can be outstanding, and this is its acknowledgement
    this.#outgoingPeerId = command.outgoingPeerId;
    this.#incomingSessionId = command.incomingSessionId & 3;
    this.#outgoingSessionId = command.outgoingSessionId & 3;
    this.#mtu = Math.min(this.#mtu, clamp(command.mtu, ENET_MINIMUM_MTU, ENET_MAXIMUM_MTU));
    this.#channelCount = Math.min(this.#requestedChannels, command.channelCount);
    this.#outgoingReliable = new Array(this.#channelCount).fill(0);
    this.#outgoingUnreliable = new Array(this.#channelCount).fill(0);
    this.#incoming = Array.from({ length: this.#channelCount }, () => ({
      reliableSequence: 0,
      unreliableSequence: 0,
      pending: new Map(),
    }));
    this.#state = "connected";
    out.events.push("connected");
    return "ack"; // the host becomes connected when this acknowledgement arrives
  }

  #handleAcknowledge(
    command: Extract<EnetCommand, { kind: "acknowledge" }>,
    nowMs: number,
    out: EnetClientOutput,
  ): void {
    const index = this.#inFlight.findIndex((c) =>
      c.command.channelId === command.channelId &&
      c.command.reliableSequenceNumber === command.receivedReliableSequenceNumber
    );
    if (index < 0) return;
    const [acked] = this.#inFlight.splice(index, 1);
    this.#outgoingBytes -= acked.size;
    const sample = (nowMs - command.receivedSentTime) & 0xffff;
    if (sample < 0x8000) this.#updateRoundTrip(sample);
    if (acked.command.kind === "disconnect" && this.#state === "disconnecting") {
      this.#close("local");
      out.events.push("disconnected");
    }
  }

  #handleFragment(
    command: Extract<EnetCommand, { kind: "send_fragment" }>,
    channel: IncomingChannel,
    out: EnetClientOutput,
  ): Verdict {
    const { fragmentCount, fragmentNumber, totalLength, fragmentOffset, payload, startSequenceNumber } =
      command;
    if (
      fragmentCount < 1 || fragmentCount > ENET_MAX_FRAGMENT_COUNT || fragmentNumber >= fragmentCount ||
      totalLength > ENET_MAX_PACKET_BYTES || totalLength < fragmentCount || fragmentOffset >= totalLength ||
      payload.length > totalLength - fragmentOffset ||
      seqAfter(command.reliableSequenceNumber, startSequenceNumber) !== fragmentNumber
    ) {
      return "stop";
    }
    const distance = seqAfter(startSequenceNumber, channel.reliableSequence);
    if (distance === 0 || distance >= 0x8000) return "ack"; // delivered already
    let entry = channel.pending.get(startSequenceNumber);
    if (entry === undefined) {
      if (!this.#reserve(totalLength)) return "skip";
      entry = {
        kind: "fragments",
        fragmentCount,
        received: new Uint8Array(fragmentCount),
        remaining: fragmentCount,
        buffer: new Uint8Array(totalLength),
      };
      channel.pending.set(startSequenceNumber, entry);
    } else if (
      entry.kind !== "fragments" || entry.fragmentCount !== fragmentCount ||
      entry.buffer.length !== totalLength
    ) {
      return "stop";
    }
    if (!entry.received[fragmentNumber]) {
      entry.received[fragmentNumber] = 1;
      entry.remaining--;
      entry.buffer.set(payload, fragmentOffset);
    }
    if (entry.remaining === 0) this.#dispatch(command.channelId, out);
    return "ack";
  }

  #reserve(bytes: number): boolean {
    if (
      this.#bufferedIncomingBytes + bytes > ENET_MAX_BUFFERED_INCOMING_BYTES ||
      this.#bufferedIncomingCommands >= ENET_MAX_BUFFERED_INCOMING_COMMANDS
    ) {
      return false; // not acknowledged, so the host resends once we have caught up
    }
    this.#bufferedIncomingBytes += bytes;
    this.#bufferedIncomingCommands++;
    return true;
  }

  #release(entry: Pending): void {
    this.#bufferedIncomingBytes -= entry.kind === "message" ? entry.payload.length : entry.buffer.length;
    this.#bufferedIncomingCommands--;
  }

  /** Delivers every consecutive complete message and advances the channel's reliable sequence past it. */
  #dispatch(channelId: number, out: EnetClientOutput): void {
    const channel = this.#incoming[channelId];
    for (;;) {
      const next = (channel.reliableSequence + 1) & 0xffff;
      const entry = channel.pending.get(next);
      if (entry === undefined || (entry.kind === "fragments" && entry.remaining > 0)) return;
      channel.pending.delete(next);
      this.#release(entry);
      const span = entry.kind === "fragments" ? entry.fragmentCount : 1;
      for (let i = 1; i < span; i++) { // sequence numbers the fragments used cannot start a message
        const stale = channel.pending.get((next + i) & 0xffff);
        if (stale) {
          channel.pending.delete((next + i) & 0xffff);
          this.#release(stale);
        }
      }
      channel.reliableSequence = (next + span - 1) & 0xffff;
      channel.unreliableSequence = 0;
      out.delivered.push({
        channel: channelId,
        payload: entry.kind === "message" ? entry.payload : entry.buffer,
      });
    }
  }

  /** ENet's sliding bitmap: a group is delivered once within the current 1024-group window. */
  #acceptUnsequenced(group: number): boolean {
    const index = group % UNSEQUENCED_WINDOW_SIZE;
    const extended = group < this.#unsequencedBase ? group + 0x10000 : group;
    if (extended >= this.#unsequencedBase + FREE_UNSEQUENCED_WINDOWS * UNSEQUENCED_WINDOW_SIZE) return false;
    const base = (group - index) & 0xffff;
    if (base !== this.#unsequencedBase) {
      this.#unsequencedBase = base;
      this.#unsequencedWindow.fill(0);
    } else if (this.#unsequencedWindow[index >> 5] & (1 << (index & 31))) {
      return false;
    }
    this.#unsequencedWindow[index >> 5] |= 1 << (index & 31);
    return true;
  }

  #updateRoundTrip(sampleMs: number): void {
    if (!this.#roundTripSampled) {
      this.#roundTripSampled = true;
      this.#roundTripMs = sampleMs;
      this.#roundTripVarianceMs = (sampleMs + 1) / 2;
      return;
    }
    const difference = sampleMs - this.#roundTripMs;
    this.#roundTripMs += difference / 8;
    this.#roundTripVarianceMs += (Math.abs(difference) - this.#roundTripVarianceMs) / 4;
  }

  // --- outgoing ------------------------------------------------------------------------------------------------

  #nextReliable(channel: number): number {
    this.#outgoingReliable[channel] = (this.#outgoingReliable[channel] + 1) & 0xffff;
    this.#outgoingUnreliable[channel] = 0;
    return this.#outgoingReliable[channel];
  }

  /** Connection-level commands (connect, ping, disconnect) are reliable on channel 0xFF with their own sequence. */
  #connectionCommand(body: { kind: "ping" } | { kind: "disconnect"; data: number }): EnetCommand {
    return { ...body, ...this.#connectionHeader() };
  }

  #connectionHeader() {
    this.#connectionSequence = (this.#connectionSequence + 1) & 0xffff;
    return {
      channelId: ENET_CONNECTION_CHANNEL,
      reliableSequenceNumber: this.#connectionSequence,
      acknowledge: true,
      unsequenced: false,
    };
  }

  #enqueue(command: EnetCommand): void {
    const size = encodedCommandSize(command);
    this.#outgoingBytes += size;
    this.#queued.push({ command, size, firstSentMs: null, lastSentMs: 0, retransmitTimeoutMs: 0 });
  }

  #queueAck(command: EnetCommand, sentTime: number): void {
    this.#acks.push({
      kind: "acknowledge",
      channelId: command.channelId,
      reliableSequenceNumber: command.reliableSequenceNumber,
      acknowledge: false,
      unsequenced: false,
      receivedReliableSequenceNumber: command.reliableSequenceNumber,
      receivedSentTime: sentTime,
    });
  }

  #dropOutgoing(): void {
    this.#queued = [];
    this.#inFlight = [];
    this.#outgoingBytes = 0;
  }

  #close(cause: EnetClientDisconnectCause): void {
    this.#state = "disconnected";
    this.#disconnectCause = cause;
    this.#dropOutgoing();
    for (const channel of this.#incoming) channel.pending.clear();
    this.#bufferedIncomingBytes = 0;
    this.#bufferedIncomingCommands = 0;
  }

  #output(): EnetClientOutput {
    return { datagrams: [], delivered: [], events: [] };
  }

  /** Packs acknowledgements, then queued commands, into datagrams of at most one MTU. */
  #flush(nowMs: number, out: EnetClientOutput): EnetClientOutput {
    const budget = this.#mtu - HEADER_SIZE_WITH_TIME;
    let batch: EnetCommand[] = [];
    let used = 0;
    const emit = () => {
      if (batch.length === 0) return;
      const known = this.#outgoingPeerId !== ENET_MAXIMUM_PEER_ID;
      out.datagrams.push(encodeDatagram({
        peerId: this.#outgoingPeerId,
        sessionId: known ? this.#outgoingSessionId : 0,
        sentTime: batch.some((c) => c.acknowledge) ? nowMs & 0xffff : null,
      }, batch));
      batch = [];
      used = 0;
    };
    const add = (command: EnetCommand, size: number) => {
      if (used + size > budget) emit();
      batch.push(command);
      used += size;
    };
    for (const ack of this.#acks) add(ack, encodedCommandSize(ack));
    this.#acks = [];
    const stillQueued: Outgoing[] = [];
    for (const queued of this.#queued) {
      const reliable = queued.command.acknowledge;
      if (reliable && this.#inFlight.length >= MAX_RELIABLE_IN_FLIGHT) {
        stillQueued.push(queued);
        continue;
      }
      add(queued.command, queued.size);
      if (!reliable) {
        this.#outgoingBytes -= queued.size;
        continue;
      }
      queued.firstSentMs ??= nowMs;
      queued.lastSentMs = nowMs;
      if (queued.retransmitTimeoutMs === 0) {
        queued.retransmitTimeoutMs = Math.max(
          MINIMUM_RETRANSMIT_MS,
          this.#roundTripMs + 4 * this.#roundTripVarianceMs,
        );
      }
      this.#inFlight.push(queued);
    }
    this.#queued = stillQueued;
    emit();
    return out;
  }
}
