/**
 * The reliability half of an ENet 1.3 peer, shared by the host peer (`EnetHostPeer`, enet.ts) and the test
 * client's peer (tests/gamestream_client/enet_client.ts), so the two ends cannot drift apart: reliable sequence
 * numbers per channel, acknowledgements, retransmission on an RTT-based timeout with back-off, fragmentation and
 * reassembly, in-order delivery per channel, unreliable and unsequenced filtering, pings and the peer timeout.
 *
 * What differs between the ends stays with each peer: the handshake (CONNECT versus VERIFY_CONNECT), which header
 * a datagram must carry to be accepted, the connection states and how a peer reports them. The wire format is
 * enet_codec.ts; because both ends use it, its bytes are pinned separately by hand-written vectors in
 * enet_test.ts, so a codec bug cannot hide on both sides of a test.
 *
 * Pure: the clock comes in as `nowMs`, datagrams go out through the arrays callers pass.
 */
import {
  decodeDatagram,
  encodeDatagram,
  encodedCommandSize,
  ENET_CONNECTION_CHANNEL,
  ENET_FRAGMENT_COMMAND_SIZE,
  ENET_HEADER_SIZE_WITH_TIME,
  ENET_MAXIMUM_MTU,
  ENET_MINIMUM_MTU,
  ENET_MOONLIGHT_MTU,
  type EnetCommand,
  type EnetConnectParameters,
  type EnetHeader,
} from "./enet_codec.ts";

/** Largest message we send or reassemble; control messages are tens of bytes, input packets under 64. */
export const ENET_MAX_PACKET_BYTES = 64 * 1024;
/** Fragments of a 64 KiB message at the minimum MTU (576 − 28 = 548 bytes each) number 120; round up. */
export const ENET_MAX_FRAGMENT_COUNT = 128;
/** Out-of-order reliable data held per peer before we stop acknowledging (the sender then retransmits). */
export const ENET_MAX_BUFFERED_INCOMING_BYTES = 256 * 1024;
export const ENET_MAX_BUFFERED_INCOMING_COMMANDS = 1024;
/** Bytes queued for sending but not yet acknowledged; beyond this a send is refused. */
export const ENET_MAX_OUTGOING_BYTES = 1024 * 1024;
/** Reliable commands in flight at once, far below ENet's 4096-sequence reliable window. */
const MAX_RELIABLE_IN_FLIGHT = 256;
/** ENET_PEER_DEFAULT_ROUND_TRIP_TIME: the first retransmission waits this long, before any RTT sample. */
const INITIAL_ROUND_TRIP_MS = 500;
/** A same-millisecond loopback would otherwise give a zero retransmission timeout, i.e. a resend every tick. */
const MINIMUM_RETRANSMIT_MS = 10;
/** ENET_PEER_UNSEQUENCED_WINDOW_SIZE: duplicates of unsequenced groups are filtered within this many groups. */
const UNSEQUENCED_WINDOW_SIZE = 1024;
/** ENET_PEER_FREE_UNSEQUENCED_WINDOWS: groups further ahead than this many windows are discarded. */
const FREE_UNSEQUENCED_WINDOWS = 32;

export interface EnetDelivery {
  channel: number;
  payload: Uint8Array;
}

/** "ack": handled, acknowledge if asked; "skip": handled, no acknowledgement; "stop": drop rest of datagram. */
export type EnetVerdict = "ack" | "skip" | "stop";

/** Reliable is ordered and acknowledged; unreliable is ordered, may be lost; unsequenced may also reorder. */
export type EnetSendMode = "reliable" | "unreliable" | "unsequenced";
export type EnetQueueErrorCode = "bad_channel" | "too_large" | "queue_full";
export type EnetQueueResult = { ok: true } | { ok: false; error: EnetQueueErrorCode };

/**
 * ENet's `enet_peer_timeout(limit, minimum, maximum)`: a peer is dropped once an unacknowledged reliable command
 * is `maximumMs` old, or once it is overdue after at least `limit` back-offs and `minimumMs` old.
 */
export interface EnetTimeoutPolicy {
  limit: number;
  minimumMs: number;
  maximumMs: number;
}

/** Connection-level commands: reliable, on channel 0xFF, numbered by their own sequence. */
export type EnetConnectionCommandBody =
  | { kind: "ping" }
  | { kind: "disconnect"; data: number }
  | ({ kind: "connect"; data: number } & EnetConnectParameters)
  | ({ kind: "verify_connect" } & EnetConnectParameters);

type PendingIncoming =
  | { kind: "message"; payload: Uint8Array }
  | { kind: "fragments"; fragmentCount: number; received: Uint8Array; remaining: number; buffer: Uint8Array };

interface IncomingChannel {
  reliableSequence: number;
  unreliableSequence: number;
  pending: Map<number, PendingIncoming>;
}

interface OutgoingChannel {
  reliableSequence: number;
  unreliableSequence: number;
}

interface OutgoingCommand {
  command: EnetCommand;
  size: number;
  firstSentMs: number | null;
  lastSentMs: number;
  retransmitTimeoutMs: number;
  sendAttempts: number;
}

/** How far `a` is after `b` in 16-bit sequence space (0x8000 and above: it is before). */
export const sequenceAfter = (a: number, b: number): number => (a - b) & 0xffff;

export function clampMtu(mtu: number): number {
  return Math.min(ENET_MAXIMUM_MTU, Math.max(ENET_MINIMUM_MTU, mtu));
}

export class EnetReliability {
  #mtu = ENET_MOONLIGHT_MTU;
  #incoming: IncomingChannel[] = [];
  #outgoing: OutgoingChannel[] = [];
  #connectionSequence = 0;
  #outgoingUnsequencedGroup = 0;
  #unsequencedBase = 0;
  #unsequencedWindow = new Uint32Array(UNSEQUENCED_WINDOW_SIZE / 32);
  #bufferedIncomingBytes = 0;
  #bufferedIncomingCommands = 0;

  #acks: EnetCommand[] = [];
  #queued: OutgoingCommand[] = [];
  #inFlight: OutgoingCommand[] = [];
  #outgoingBytes = 0;
  #lastReceiveMs = 0;
  #roundTripMs = INITIAL_ROUND_TRIP_MS;
  #roundTripVarianceMs = 0;
  #roundTripSampled = false;
  #retransmissions = 0;
  #commandsRefused = 0;

  /** Largest datagram sent; set to the negotiated value during the handshake. */
  get mtu(): number {
    return this.#mtu;
  }

  set mtu(value: number) {
    this.#mtu = clampMtu(value);
  }

  get channelCount(): number {
    return this.#incoming.length;
  }

  get roundTripMs(): number {
    return this.#roundTripMs;
  }

  get retransmissions(): number {
    return this.#retransmissions;
  }

  /** Data commands neither buffered nor acknowledged because the incoming buffer was full. */
  get commandsRefused(): number {
    return this.#commandsRefused;
  }

  get bufferedIncomingBytes(): number {
    return this.#bufferedIncomingBytes;
  }

  get bufferedOutgoingBytes(): number {
    return this.#outgoingBytes;
  }

  get pendingAcknowledgements(): number {
    return this.#acks.length;
  }

  /** Reliable commands sent and not yet acknowledged, plus any waiting for a free in-flight slot. */
  get unacknowledged(): number {
    return this.#inFlight.length + this.#queued.filter((q) => q.command.acknowledge).length;
  }

  /** Sets up `channelCount` data channels with fresh sequence numbers (once the handshake settles the count). */
  openChannels(channelCount: number): void {
    this.#incoming = Array.from({ length: channelCount }, () => ({
      reliableSequence: 0,
      unreliableSequence: 0,
      pending: new Map(),
    }));
    this.#outgoing = Array.from(
      { length: channelCount },
      () => ({ reliableSequence: 0, unreliableSequence: 0 }),
    );
  }

  /** Any datagram the peer accepted counts as a sign of life (it postpones the next ping). */
  noteReceive(nowMs: number): void {
    this.#lastReceiveMs = nowMs;
  }

  /**
   * Decodes a datagram and feeds its commands to `handle` until one says "stop" or `closed()` turns true,
   * queueing an acknowledgement for every "ack" the sender asked for. Null when the datagram is malformed or
   * `accept` refuses its header, else the number of commands refused with "stop" (0 or 1).
   */
  receiveDatagram(
    bytes: Uint8Array,
    nowMs: number,
    accept: (header: EnetHeader) => boolean,
    handle: (command: EnetCommand, header: EnetHeader) => EnetVerdict,
    closed: () => boolean,
  ): number | null {
    const decoded = decodeDatagram(bytes);
    if (!decoded.ok || !accept(decoded.datagram.header)) return null;
    const { header, commands } = decoded.datagram;
    this.noteReceive(nowMs);
    for (const command of commands) {
      if (closed()) break;
      const verdict = handle(command, header);
      if (verdict === "stop") return 1;
      if (verdict === "ack" && command.acknowledge && header.sentTime !== null) {
        this.#queueAck(command, header.sentTime);
      }
    }
    return 0;
  }

  /**
   * Handles a command of a connected peer other than the handshake, acknowledge and disconnect ones: data is
   * buffered, reassembled and delivered in order into `delivered`; pings and limits need only the acknowledgement.
   */
  receiveData(command: EnetCommand, delivered: EnetDelivery[]): EnetVerdict {
    switch (command.kind) {
      case "ping":
      case "bandwidth_limit":
      case "throttle_configure":
        return "ack"; // no bandwidth limits or throttling on a LAN control stream; acknowledging is all
      case "connect":
      case "verify_connect":
      case "acknowledge":
      case "disconnect":
        return "stop"; // the peer's own state machine owns these
    }
    if (command.channelId >= this.#incoming.length) return "stop"; // also refuses data on channel 0xFF
    const channel = this.#incoming[command.channelId];
    switch (command.kind) {
      case "send_reliable": {
        const distance = sequenceAfter(command.reliableSequenceNumber, channel.reliableSequence);
        if (distance === 0 || distance >= 0x8000 || channel.pending.has(command.reliableSequenceNumber)) {
          return "ack"; // a duplicate: acknowledge again, the first acknowledgement may have been lost
        }
        if (!this.#reserve(command.payload.length)) return "skip"; // not acknowledged: the sender resends
        channel.pending.set(command.reliableSequenceNumber, { kind: "message", payload: command.payload });
        this.#dispatch(command.channelId, delivered);
        return "ack";
      }
      case "send_fragment":
        return this.#receiveFragment(command, channel, delivered);
      case "send_unreliable": {
        // Only newer data counts (a repeat or an older datagram is dropped). Simplification: unreliable data
        // that overtook a missing reliable message is dropped, not held (legal for unreliable data).
        const ahead = sequenceAfter(command.unreliableSequenceNumber, channel.unreliableSequence);
        if (command.reliableSequenceNumber === channel.reliableSequence && ahead > 0 && ahead < 0x8000) {
          channel.unreliableSequence = command.unreliableSequenceNumber;
          delivered.push({ channel: command.channelId, payload: command.payload });
        }
        return "skip";
      }
      case "send_unsequenced":
        if (this.#acceptUnsequenced(command.unsequencedGroup)) {
          delivered.push({ channel: command.channelId, payload: command.payload });
        }
        return "skip";
      case "send_unreliable_fragment":
        return "skip"; // neither side of GameStream sends these; dropping is legal for unreliable data
    }
  }

  /** Settles the in-flight command an ACKNOWLEDGE names, samples the RTT and returns it (null if unknown). */
  acknowledge(command: Extract<EnetCommand, { kind: "acknowledge" }>, nowMs: number): EnetCommand | null {
    const index = this.#inFlight.findIndex((c) =>
      c.command.channelId === command.channelId &&
      c.command.reliableSequenceNumber === command.receivedReliableSequenceNumber
    );
    if (index < 0) return null;
    const [acked] = this.#inFlight.splice(index, 1);
    this.#outgoingBytes -= acked.size;
    const sample = (nowMs - command.receivedSentTime) & 0xffff;
    if (sample < 0x8000) this.#updateRoundTrip(sample);
    return acked.command;
  }

  /**
   * Queues a connection-level command on channel 0xFF, numbered by the connection sequence. Reliable unless
   * `reliable` is false, which `enet_peer_disconnect_now` uses: flagged unsequenced, never acknowledged, but
   * still numbered (ENet numbers every channel-0xFF command).
   */
  sendConnectionCommand(body: EnetConnectionCommandBody, reliable = true): void {
    this.#connectionSequence = (this.#connectionSequence + 1) & 0xffff;
    this.#enqueue({
      ...body,
      channelId: ENET_CONNECTION_CHANNEL,
      reliableSequenceNumber: this.#connectionSequence,
      acknowledge: reliable,
      unsequenced: !reliable,
    });
  }

  /**
   * Queues a message on an open channel. As in ENet, a payload longer than one datagram's fragment room is
   * fragmented and sent reliably whatever the mode.
   */
  queueMessage(channel: number, payload: Uint8Array, mode: EnetSendMode): EnetQueueResult {
    if (!Number.isInteger(channel) || channel < 0 || channel >= this.#outgoing.length) {
      return { ok: false, error: "bad_channel" };
    }
    if (payload.length > ENET_MAX_PACKET_BYTES) return { ok: false, error: "too_large" };
    if (this.#outgoingBytes + payload.length > ENET_MAX_OUTGOING_BYTES) {
      return { ok: false, error: "queue_full" };
    }
    const out = this.#outgoing[channel];
    const base = { channelId: channel, unsequenced: false };
    const fragmentLength = this.#mtu - ENET_HEADER_SIZE_WITH_TIME - ENET_FRAGMENT_COMMAND_SIZE;
    if (payload.length > fragmentLength) {
      const fragmentCount = Math.ceil(payload.length / fragmentLength);
      const startSequenceNumber = (out.reliableSequence + 1) & 0xffff;
      for (let i = 0; i < fragmentCount; i++) {
        const fragmentOffset = i * fragmentLength;
        this.#enqueue({
          ...base,
          kind: "send_fragment",
          reliableSequenceNumber: this.#nextReliable(out),
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
        reliableSequenceNumber: this.#nextReliable(out),
        acknowledge: true,
        payload: payload.slice(),
      });
    } else if (mode === "unreliable") {
      out.unreliableSequence = (out.unreliableSequence + 1) & 0xffff;
      this.#enqueue({
        ...base,
        kind: "send_unreliable",
        reliableSequenceNumber: out.reliableSequence,
        acknowledge: false,
        unreliableSequenceNumber: out.unreliableSequence,
        payload: payload.slice(),
      });
    } else { // fits: an unsequenced command's fixed part (8) is smaller than a fragment's (24)
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
    return { ok: true };
  }

  /** Queues one command as it is; reliable exactly when it asks for an acknowledgement. */
  #enqueue(command: EnetCommand): void {
    const size = encodedCommandSize(command);
    this.#outgoingBytes += size;
    this.#queued.push({
      command,
      size,
      firstSentMs: null,
      lastSentMs: 0,
      retransmitTimeoutMs: 0,
      sendAttempts: 0,
    });
  }

  /**
   * Requeues overdue reliable commands with a doubled timeout and, when `ping` is set and nothing is outstanding,
   * pings a peer silent for `ping.intervalMs`. "timeout" when `timeout` says the peer is gone.
   */
  service(nowMs: number, timeout: EnetTimeoutPolicy, ping: { intervalMs: number } | null): "ok" | "timeout" {
    const resend: OutgoingCommand[] = [];
    for (const sent of this.#inFlight) {
      if (sent.firstSentMs === null) continue;
      const elapsed = nowMs - sent.firstSentMs;
      const overdue = nowMs - sent.lastSentMs >= sent.retransmitTimeoutMs;
      // The maximum is enforced on every call (not only when a retransmit is due) so a silent peer is dropped
      // within maximumMs even after its back-off has grown past it.
      if (
        elapsed >= timeout.maximumMs ||
        (overdue && 2 ** (sent.sendAttempts - 1) >= timeout.limit && elapsed >= timeout.minimumMs)
      ) {
        return "timeout";
      }
      if (!overdue) continue;
      sent.retransmitTimeoutMs *= 2;
      resend.push(sent);
    }
    if (resend.length > 0) {
      this.#inFlight = this.#inFlight.filter((c) => !resend.includes(c));
      this.#queued.unshift(...resend);
      this.#retransmissions += resend.length;
    }
    if (
      ping !== null && this.#inFlight.length === 0 && this.#queued.length === 0 &&
      nowMs - this.#lastReceiveMs >= ping.intervalMs
    ) {
      this.sendConnectionCommand({ kind: "ping" });
    }
    return "ok";
  }

  /**
   * Packs acknowledgements, then queued commands, into datagrams of at most one MTU under `header` (whose
   * sentTime is set exactly when a datagram carries a reliable command) and appends them to `datagrams`.
   */
  flush(nowMs: number, header: Omit<EnetHeader, "sentTime">, datagrams: Uint8Array[]): void {
    const budget = this.#mtu - ENET_HEADER_SIZE_WITH_TIME;
    let batch: EnetCommand[] = [];
    let used = 0;
    const emit = () => {
      if (batch.length === 0) return;
      const sentTime = batch.some((c) => c.acknowledge) ? nowMs & 0xffff : null;
      datagrams.push(encodeDatagram({ ...header, sentTime }, batch));
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
    const stillQueued: OutgoingCommand[] = [];
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
      queued.sendAttempts++;
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
  }

  /** Forgets acknowledgements owed to a peer we cannot address yet. */
  discardAcknowledgements(): void {
    this.#acks = [];
  }

  /** Drops everything unsent and unacknowledged (as `enet_peer_disconnect` does before its DISCONNECT). */
  dropOutgoing(): void {
    this.#queued = [];
    this.#inFlight = [];
    this.#outgoingBytes = 0;
  }

  /** The connection is over: outgoing and buffered incoming data are released. */
  close(): void {
    this.dropOutgoing();
    for (const channel of this.#incoming) channel.pending.clear();
    this.#bufferedIncomingBytes = 0;
    this.#bufferedIncomingCommands = 0;
  }

  // --- internals -----------------------------------------------------------------------------------------------

  #nextReliable(out: OutgoingChannel): number {
    out.reliableSequence = (out.reliableSequence + 1) & 0xffff;
    out.unreliableSequence = 0;
    return out.reliableSequence;
  }

  #queueAck(command: EnetCommand, sentTime: number): void {
    // Bounded: at most one acknowledgement per received command, and commands per datagram are bounded by 4096 B.
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

  /** ENet's RTT filter: the first sample is taken as is, then rtt += (s − rtt)/8, var += (|s − rtt| − var)/4. */
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

  #receiveFragment(
    command: Extract<EnetCommand, { kind: "send_fragment" }>,
    channel: IncomingChannel,
    delivered: EnetDelivery[],
  ): EnetVerdict {
    const { fragmentCount, fragmentNumber, totalLength, fragmentOffset, payload, startSequenceNumber } =
      command;
    if (
      fragmentCount < 1 || fragmentCount > ENET_MAX_FRAGMENT_COUNT || fragmentNumber >= fragmentCount ||
      totalLength > ENET_MAX_PACKET_BYTES || totalLength < fragmentCount || fragmentOffset >= totalLength ||
      payload.length > totalLength - fragmentOffset ||
      sequenceAfter(command.reliableSequenceNumber, startSequenceNumber) !== fragmentNumber
    ) {
      return "stop";
    }
    const distance = sequenceAfter(startSequenceNumber, channel.reliableSequence);
    if (distance === 0 || distance >= 0x8000) return "ack"; // the whole message was delivered already
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
    if (entry.remaining === 0) this.#dispatch(command.channelId, delivered);
    return "ack";
  }

  #reserve(bytes: number): boolean {
    if (
      this.#bufferedIncomingBytes + bytes > ENET_MAX_BUFFERED_INCOMING_BYTES ||
      this.#bufferedIncomingCommands >= ENET_MAX_BUFFERED_INCOMING_COMMANDS
    ) {
      this.#commandsRefused++;
      return false;
    }
    this.#bufferedIncomingBytes += bytes;
    this.#bufferedIncomingCommands++;
    return true;
  }

  #release(entry: PendingIncoming): void {
    this.#bufferedIncomingBytes -= entry.kind === "message" ? entry.payload.length : entry.buffer.length;
    this.#bufferedIncomingCommands--;
  }

  /** Delivers every consecutive complete message, advancing the channel's reliable sequence past it. */
  #dispatch(channelId: number, delivered: EnetDelivery[]): void {
    const channel = this.#incoming[channelId];
    for (;;) {
      const next = (channel.reliableSequence + 1) & 0xffff;
      const entry = channel.pending.get(next);
      if (entry === undefined || (entry.kind === "fragments" && entry.remaining > 0)) return;
      channel.pending.delete(next);
      this.#release(entry);
      const span = entry.kind === "fragments" ? entry.fragmentCount : 1;
      // Anything buffered under the sequence numbers a fragmented message spans is stale; free it.
      for (let i = 1; i < span; i++) {
        const covered = (next + i) & 0xffff;
        const stale = channel.pending.get(covered);
        if (stale) {
          channel.pending.delete(covered);
          this.#release(stale);
        }
      }
      channel.reliableSequence = (next + span - 1) & 0xffff;
      channel.unreliableSequence = 0;
      delivered.push({
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
}
