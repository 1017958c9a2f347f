/**
 * ENet 1.3 for the GameStream control stream (docs/gamestream-protocol.md §6.1, §14): the pure host-side peer
 * state machine. The wire codec is enet_codec.ts and the reliability machinery (sequencing, acknowledgements,
 * retransmission, fragments, ordering, pings, timeouts) is enet_reliability.ts, shared with the test client's
 * peer; this module adds what only the host does: accept one CONNECT, derive the sessions, answer
 * VERIFY_CONNECT, and report events.
 *
 * Why our own ENet in TypeScript rather than Debian's libenet: the control stream carries at most a few hundred small
 * messages per second (input, pings), so the JS cost is irrelevant; a pure state machine with the clock passed in
 * (`nowMs`) is testable without sockets; and libenet would add a C dependency plus a second event loop. It also
 * sidesteps the §14 pitfall of stock 1.3.17 that matters here (no self-timed retransmits): the caller owns the
 * socket, demultiplexes by remote address and calls `tick` as often as it likes.
 */
import {
  decodeDatagram,
  ENET_DEFAULT_TIMEOUT_LIMIT,
  ENET_DEFAULT_TIMEOUT_MAXIMUM_MS,
  ENET_DEFAULT_TIMEOUT_MINIMUM_MS,
  ENET_FRAGMENT_COMMAND_SIZE,
  ENET_HEADER_SIZE_WITH_TIME,
  ENET_MAXIMUM_CHANNEL_COUNT,
  ENET_MAXIMUM_PEER_ID,
  ENET_MAXIMUM_WINDOW_SIZE,
  ENET_MINIMUM_WINDOW_SIZE,
  ENET_MOONLIGHT_MTU,
  ENET_PING_INTERVAL_MS,
  type EnetCommand,
  type EnetHeader,
} from "./enet_codec.ts";
import {
  clampMtu,
  type EnetDelivery,
  EnetReliability,
  type EnetTimeoutPolicy,
  type EnetVerdict,
} from "./enet_reliability.ts";

export * from "./enet_codec.ts";
export {
  clampMtu,
  ENET_MAX_BUFFERED_INCOMING_BYTES,
  ENET_MAX_BUFFERED_INCOMING_COMMANDS,
  ENET_MAX_FRAGMENT_COUNT,
  ENET_MAX_OUTGOING_BYTES,
  ENET_MAX_PACKET_BYTES,
  type EnetConnectionCommandBody,
  type EnetDelivery,
  type EnetQueueErrorCode,
  type EnetQueueResult,
  EnetReliability,
  type EnetSendMode,
  type EnetTimeoutPolicy,
  type EnetVerdict,
  sequenceAfter,
} from "./enet_reliability.ts";

/**
 * The connect data of a datagram that is a well-formed ENet CONNECT (peer ID 0xFFF, a CONNECT command first, with
 * the channel count and peer ID `EnetHostPeer` would accept), else null. Lets a host decide before it creates any
 * peer state: everything else from an unknown address is dropped without a trace.
 */
export function parseConnectRequest(bytes: Uint8Array): { connectData: number } | null {
  const decoded = decodeDatagram(bytes);
  if (!decoded.ok || decoded.datagram.header.peerId !== ENET_MAXIMUM_PEER_ID) return null;
  const command = decoded.datagram.commands[0];
  if (command.kind !== "connect") return null;
  if (command.channelCount < 1 || command.channelCount > ENET_MAXIMUM_CHANNEL_COUNT) return null;
  if (command.outgoingPeerId >= ENET_MAXIMUM_PEER_ID) return null;
  return { connectData: command.data >>> 0 };
}

// ---------------------------------------------------------------------------------------------------------------
// Host-side peer

export interface EnetHostPeerOptions {
  /** Peer ID we hand the client in VERIFY_CONNECT; the caller demultiplexes by address, so 0 is fine. */
  incomingPeerId?: number;
  mtu?: number;
  /** Upper bound on channels accepted from the client (ENet "channel limit"); must be ≥ 48 for Moonlight. */
  channelLimit?: number;
  timeoutLimit?: number;
  timeoutMinimumMs?: number;
  timeoutMaximumMs?: number;
  pingIntervalMs?: number;
}

export type EnetPeerState =
  | "listening"
  | "acknowledging_connect"
  | "connected"
  | "disconnecting"
  | "disconnected";

export type EnetEvent =
  | { type: "connect"; data: number; channelCount: number; mtu: number }
  | { type: "disconnect"; cause: "peer" | "local" | "timeout"; data: number };

export interface EnetOutput {
  datagramsToSend: Uint8Array[];
  delivered: EnetDelivery[];
  events: EnetEvent[];
}

export type EnetSendErrorCode = "not_connected" | "bad_channel" | "too_large" | "queue_full";
export type EnetSendResult = { ok: true } | { ok: false; error: EnetSendErrorCode };

export interface EnetPeerStats {
  datagramsReceived: number;
  datagramsDropped: number;
  commandsDropped: number;
  retransmissions: number;
  roundTripMs: number;
}

/**
 * One ENet peer seen from the host: accepts a single CONNECT, then delivers reliable data per channel in order,
 * acknowledges, retransmits, pings and times out. Feed it datagrams from one remote address with `receive`, call
 * `tick` periodically (≤ 10 ms keeps retransmits prompt, §14), and send what both return.
 */
export class EnetHostPeer {
  #state: EnetPeerState = "listening";
  readonly #link = new EnetReliability();
  readonly #incomingPeerId: number;
  readonly #hostMtu: number;
  readonly #channelLimit: number;
  readonly #timeout: EnetTimeoutPolicy;
  readonly #pingIntervalMs: number;

  #outgoingPeerId = ENET_MAXIMUM_PEER_ID;
  #incomingSessionId = 0xff;
  #outgoingSessionId = 0xff;
  #connectData = 0;
  #stats = { datagramsReceived: 0, datagramsDropped: 0, commandsDropped: 0 };

  constructor(options: EnetHostPeerOptions = {}) {
    this.#incomingPeerId = options.incomingPeerId ?? 0;
    this.#hostMtu = clampMtu(options.mtu ?? ENET_MOONLIGHT_MTU);
    this.#link.mtu = this.#hostMtu;
    this.#channelLimit = Math.min(
      ENET_MAXIMUM_CHANNEL_COUNT,
      Math.max(1, options.channelLimit ?? ENET_MAXIMUM_CHANNEL_COUNT),
    );
    this.#timeout = {
      limit: options.timeoutLimit ?? ENET_DEFAULT_TIMEOUT_LIMIT,
      minimumMs: options.timeoutMinimumMs ?? ENET_DEFAULT_TIMEOUT_MINIMUM_MS,
      maximumMs: options.timeoutMaximumMs ?? ENET_DEFAULT_TIMEOUT_MAXIMUM_MS,
    };
    this.#pingIntervalMs = options.pingIntervalMs ?? ENET_PING_INTERVAL_MS;
    if (this.#incomingPeerId < 0 || this.#incomingPeerId >= ENET_MAXIMUM_PEER_ID) {
      throw new RangeError(`incomingPeerId ${this.#incomingPeerId} outside 0..4094`);
    }
  }

  get state(): EnetPeerState {
    return this.#state;
  }

  get stats(): Readonly<EnetPeerStats> {
    return {
      ...this.#stats,
      commandsDropped: this.#stats.commandsDropped + this.#link.commandsRefused,
      retransmissions: this.#link.retransmissions,
      roundTripMs: this.#link.roundTripMs,
    };
  }

  /** Incoming bytes held for reassembly or reordering; bounded by ENET_MAX_BUFFERED_INCOMING_BYTES. */
  get bufferedIncomingBytes(): number {
    return this.#link.bufferedIncomingBytes;
  }

  /** Outgoing bytes queued or awaiting acknowledgement; bounded by ENET_MAX_OUTGOING_BYTES. */
  get bufferedOutgoingBytes(): number {
    return this.#link.bufferedOutgoingBytes;
  }

  get pendingAcknowledgements(): number {
    return this.#link.pendingAcknowledgements;
  }

  receive(datagram: Uint8Array, nowMs: number): EnetOutput {
    const output: EnetOutput = { datagramsToSend: [], delivered: [], events: [] };
    this.#stats.datagramsReceived++;
    const refused = this.#link.receiveDatagram(
      datagram,
      nowMs,
      (header) => this.#acceptHeader(header),
      (command, header) => this.#handle(command, header, nowMs, output),
      () => this.#state === "disconnected",
    );
    if (refused === null) this.#stats.datagramsDropped++;
    else this.#stats.commandsDropped += refused;
    return this.#flush(nowMs, output);
  }

  /** Queues a message; it leaves with the next `receive` or `tick`. Large messages are fragmented (reliably). */
  send(channel: number, payload: Uint8Array, reliable: boolean): EnetSendResult {
    if (this.#state !== "connected") return { ok: false, error: "not_connected" };
    return this.#link.queueMessage(channel, payload, reliable ? "reliable" : "unreliable");
  }

  /**
   * Sends an unsequenced message (no ordering, no acknowledgement, duplicates filtered by the receiver). Refused
   * when it would need fragments, which ENet would send reliably.
   */
  sendUnsequenced(channel: number, payload: Uint8Array): EnetSendResult {
    if (this.#state !== "connected") return { ok: false, error: "not_connected" };
    if (payload.length > this.#link.mtu - ENET_HEADER_SIZE_WITH_TIME - ENET_FRAGMENT_COMMAND_SIZE) {
      return { ok: false, error: "too_large" };
    }
    return this.#link.queueMessage(channel, payload, "unsequenced");
  }

  /**
   * Graceful disconnect: already-queued messages go first (so a termination message sent reliably just before
   * arrives, §14), then DISCONNECT; the "disconnect" event follows its acknowledgement or a timeout.
   */
  disconnect(data = 0): void {
    if (this.#state === "connected" || this.#state === "acknowledging_connect") {
      this.#link.sendConnectionCommand({ kind: "disconnect", data });
      this.#state = "disconnecting";
    } else if (this.#state === "listening") {
      this.#state = "disconnected";
    }
  }

  /** Retransmits overdue reliable commands, pings an idle peer, detects timeouts and flushes queued messages. */
  tick(nowMs: number): EnetOutput {
    const output: EnetOutput = { datagramsToSend: [], delivered: [], events: [] };
    if (this.#state === "listening" || this.#state === "disconnected") return output;
    const ping = this.#state === "connected" ? { intervalMs: this.#pingIntervalMs } : null;
    if (this.#link.service(nowMs, this.#timeout, ping) === "timeout") {
      this.#reset();
      output.events.push({ type: "disconnect", cause: "timeout", data: 0 });
      return output;
    }
    return this.#flush(nowMs, output);
  }

  // --- internals ---------------------------------------------------------------------------------------------

  #acceptHeader(header: EnetHeader): boolean {
    if (this.#state === "disconnected") return false;
    if (header.peerId === ENET_MAXIMUM_PEER_ID) return true; // only CONNECT is honoured, see #handle
    if (this.#state === "listening") return false;
    return header.peerId === this.#incomingPeerId && header.sessionId === this.#incomingSessionId;
  }

  #handle(command: EnetCommand, header: EnetHeader, nowMs: number, output: EnetOutput): EnetVerdict {
    if (header.peerId === ENET_MAXIMUM_PEER_ID && command.kind !== "connect") return "stop";
    switch (command.kind) {
      case "connect":
        return this.#handleConnect(command);
      case "acknowledge":
        this.#handleAcknowledge(command, nowMs, output);
        return "skip";
      case "disconnect":
        if (this.#state === "listening") return "stop";
        this.#reset();
        output.events.push({ type: "disconnect", cause: "peer", data: command.data });
        return "ack"; // the acknowledgement still leaves: only queued data was dropped
      case "verify_connect":
        return "stop"; // only a connecting client accepts this
    }
    // Like ENet, data and pings are refused (not acknowledged) outside the connected state.
    if (this.#state !== "connected") return "stop";
    return this.#link.receiveData(command, output.delivered);
  }

  #handleConnect(command: Extract<EnetCommand, { kind: "connect" }>): EnetVerdict {
    if (this.#state !== "listening") return "stop"; // a retransmitted CONNECT (or a second client): ignore
    if (command.channelCount < 1 || command.channelCount > ENET_MAXIMUM_CHANNEL_COUNT) return "stop";
    if (command.outgoingPeerId >= ENET_MAXIMUM_PEER_ID) return "stop";
    const channelCount = Math.min(command.channelCount, this.#channelLimit);
    this.#outgoingPeerId = command.outgoingPeerId;
    this.#connectData = command.data;
    this.#link.mtu = Math.min(this.#hostMtu, clampMtu(command.mtu));
    // Session IDs as ENet's handle_connect derives them: the next 2-bit value, avoiding the previous one.
    let outgoingSession = command.incomingSessionId === 0xff
      ? this.#outgoingSessionId
      : command.incomingSessionId;
    outgoingSession = (outgoingSession + 1) & 3;
    if (outgoingSession === this.#outgoingSessionId) outgoingSession = (outgoingSession + 1) & 3;
    let incomingSession = command.outgoingSessionId === 0xff
      ? this.#incomingSessionId
      : command.outgoingSessionId;
    incomingSession = (incomingSession + 1) & 3;
    if (incomingSession === this.#incomingSessionId) incomingSession = (incomingSession + 1) & 3;
    this.#outgoingSessionId = outgoingSession;
    this.#incomingSessionId = incomingSession;
    // No bandwidth limit on our side, so ENet picks the maximum window, capped by the client's offer.
    const windowSize = Math.max(
      ENET_MINIMUM_WINDOW_SIZE,
      Math.min(ENET_MAXIMUM_WINDOW_SIZE, command.windowSize),
    );
    this.#link.openChannels(channelCount);
    this.#state = "acknowledging_connect";
    // The client compares throttle values and connectID with its own, so they are echoed verbatim.
    this.#link.sendConnectionCommand({
      kind: "verify_connect",
      outgoingPeerId: this.#incomingPeerId,
      incomingSessionId: outgoingSession,
      outgoingSessionId: incomingSession,
      mtu: this.#link.mtu,
      windowSize,
      channelCount,
      incomingBandwidth: 0,
      outgoingBandwidth: 0,
      packetThrottleInterval: command.packetThrottleInterval,
      packetThrottleAcceleration: command.packetThrottleAcceleration,
      packetThrottleDeceleration: command.packetThrottleDeceleration,
      connectId: command.connectId,
    });
    return "skip"; // VERIFY_CONNECT is the acknowledgement of CONNECT
  }

  #handleAcknowledge(
    command: Extract<EnetCommand, { kind: "acknowledge" }>,
    nowMs: number,
    output: EnetOutput,
  ) {
    const acked = this.#link.acknowledge(command, nowMs);
    if (acked?.kind === "verify_connect" && this.#state === "acknowledging_connect") {
      this.#state = "connected";
      output.events.push({
        type: "connect",
        data: this.#connectData,
        channelCount: this.#link.channelCount,
        mtu: this.#link.mtu,
      });
    } else if (acked?.kind === "disconnect" && this.#state === "disconnecting") {
      this.#reset();
      output.events.push({ type: "disconnect", cause: "local", data: acked.data });
    }
  }

  #flush(nowMs: number, output: EnetOutput): EnetOutput {
    if (this.#outgoingPeerId === ENET_MAXIMUM_PEER_ID) {
      this.#link.discardAcknowledgements(); // nobody to address them to
      return output;
    }
    const header = { peerId: this.#outgoingPeerId, sessionId: this.#outgoingSessionId & 3 };
    this.#link.flush(nowMs, header, output.datagramsToSend);
    return output;
  }

  #reset(): void {
    this.#state = "disconnected";
    this.#link.close();
  }
}
