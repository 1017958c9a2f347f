/**
 * The client end of an ENet 1.3 connection as Moonlight's control stream uses it (docs/gamestream-protocol.md
 * §6.1): CONNECT with 48 channels, MTU 900 and the connect data; VERIFY_CONNECT; then reliable, unreliable
 * and unsequenced data, pings, disconnect and timeout.
 *
 * Pure, like `EnetHostPeer`: the caller owns the socket and the clock, feeds datagrams to `receive`, calls `tick`
 * every few milliseconds, and sends the datagrams every call returns. Sequencing, acknowledgements,
 * retransmission, fragments and ordering are the host's own `EnetReliability` (one implementation, not two);
 * this file holds only the client's handshake and states. The codec both ends share is pinned by byte vectors
 * in gamestream/enet_test.ts, so it cannot agree with itself on a wrong layout.
 */
import {
  clampMtu,
  ENET_MAXIMUM_CHANNEL_COUNT,
  ENET_MAXIMUM_PEER_ID,
  ENET_MAXIMUM_WINDOW_SIZE,
  ENET_MOONLIGHT_CHANNEL_COUNT,
  ENET_MOONLIGHT_MTU,
  ENET_PING_INTERVAL_MS,
  EnetReliability,
} from "../../gamestream/mod.ts";
import type {
  EnetCommand,
  EnetDelivery,
  EnetHeader,
  EnetSendMode,
  EnetTimeoutPolicy,
  EnetVerdict,
} from "../../gamestream/mod.ts";

export type { EnetSendMode };

/** Moonlight's `enet_peer_timeout(peer, 2, 10000, 10000)`: give up after 10 s without an acknowledgement. */
export const ENET_CLIENT_TIMEOUT_MS = 10_000;
/** The back-off count of Moonlight's timeout; with minimum = maximum it never decides on its own. */
const CLIENT_TIMEOUT_LIMIT = 2;
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

export class EnetClientPeer {
  #state: EnetClientState = "idle";
  #disconnectCause: EnetClientDisconnectCause | null = null;
  readonly #link = new EnetReliability();
  readonly #requestedChannels: number;
  readonly #timeout: EnetTimeoutPolicy;
  readonly #pingIntervalMs: number;
  readonly #connectId: number;

  /** Our own peer slot; the host addresses its datagrams to it. */
  readonly #incomingPeerId = 0;
  #outgoingPeerId = ENET_MAXIMUM_PEER_ID;
  #incomingSessionId = 0xff;
  #outgoingSessionId = 0xff;
  #datagramsDropped = 0;

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
    this.#link.mtu = options.mtu ?? ENET_MOONLIGHT_MTU;
    this.#connectId = (options.connectId ?? Math.floor(Math.random() * 0x1_0000_0000)) >>> 0;
    const timeoutMs = options.timeoutMs ?? ENET_CLIENT_TIMEOUT_MS;
    this.#timeout = { limit: CLIENT_TIMEOUT_LIMIT, minimumMs: timeoutMs, maximumMs: timeoutMs };
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
    return this.#link.mtu;
  }

  /** What we asked for until VERIFY_CONNECT, then what the host granted. */
  get channelCount(): number {
    return this.#link.channelCount || this.#requestedChannels;
  }

  get stats(): Readonly<EnetClientStats> {
    return {
      datagramsDropped: this.#datagramsDropped,
      retransmissions: this.#link.retransmissions,
      roundTripMs: this.#link.roundTripMs,
    };
  }

  /** Reliable commands sent and not yet acknowledged, plus any waiting for a free in-flight slot. */
  get unacknowledged(): number {
    return this.#link.unacknowledged;
  }

  connect(data: number, nowMs: number): EnetClientOutput {
    if (this.#state !== "idle") throw new Error(`ENet client is ${this.#state}; connect needs a fresh peer`);
    this.#state = "connecting";
    this.#link.noteReceive(nowMs);
    this.#link.sendConnectionCommand({
      kind: "connect",
      data: data >>> 0,
      outgoingPeerId: this.#incomingPeerId,
      incomingSessionId: this.#incomingSessionId,
      outgoingSessionId: this.#outgoingSessionId,
      mtu: this.#link.mtu,
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
    const queued = this.#link.queueMessage(channel, payload, mode);
    if (!queued.ok) {
      throw queued.error === "queue_full"
        ? new Error("ENet send queue full")
        : new RangeError(`${queued.error}: channel ${channel}, payload of ${payload.length} bytes`);
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
      this.#link.dropOutgoing();
      this.#link.sendConnectionCommand({ kind: "disconnect", data: data >>> 0 });
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
      this.#link.dropOutgoing();
      this.#link.sendConnectionCommand({ kind: "disconnect", data: data >>> 0 }, false);
      this.#flush(nowMs, out);
    }
    if (this.#state !== "disconnected") this.#close("local");
    return out;
  }

  receive(bytes: Uint8Array, nowMs: number): EnetClientOutput {
    const out = this.#output();
    const refused = this.#link.receiveDatagram(
      bytes,
      nowMs,
      (header) => this.#acceptHeader(header),
      (command) => this.#handle(command, nowMs, out),
      () => this.#state === "disconnected",
    );
    if (refused === null) {
      this.#datagramsDropped++;
      return out;
    }
    return this.#flush(nowMs, out);
  }

  /** Retransmits overdue reliable commands, pings an idle host and detects the timeout. */
  tick(nowMs: number): EnetClientOutput {
    const out = this.#output();
    if (this.#state === "idle" || this.#state === "disconnected") return out;
    const ping = this.#state === "connected" ? { intervalMs: this.#pingIntervalMs } : null;
    if (this.#link.service(nowMs, this.#timeout, ping) === "timeout") {
      this.#close("timeout");
      out.events.push("disconnected");
      return out;
    }
    return this.#flush(nowMs, out);
  }

  // --- internals -----------------------------------------------------------------------------------------------

  #acceptHeader(header: EnetHeader): boolean {
    if (this.#state === "idle" || this.#state === "disconnected") return false;
    if (header.peerId !== this.#incomingPeerId) return false;
    // Until VERIFY_CONNECT names the sessions there is nothing to compare (ENet skips the check too).
    return this.#outgoingPeerId === ENET_MAXIMUM_PEER_ID || header.sessionId === this.#incomingSessionId;
  }

  #handle(command: EnetCommand, nowMs: number, out: EnetClientOutput): EnetVerdict {
    switch (command.kind) {
      case "verify_connect":
        return this.#handleVerify(command, out);
      case "acknowledge": {
        const acked = this.#link.acknowledge(command, nowMs);
        if (acked?.kind === "disconnect" && this.#state === "disconnecting") {
          this.#close("local");
          out.events.push("disconnected");
        }
        return "skip";
      }
      case "disconnect":
        this.#close("peer");
        out.events.push("disconnected");
        return "ack";
      case "connect":
        return "stop"; // we accept no connections
    }
    if (this.#state !== "connected") return "stop"; // like ENet: no data or pings outside the connected state
    return this.#link.receiveData(command, out.delivered);
  }

  #handleVerify(
    command: Extract<EnetCommand, { kind: "verify_connect" }>,
    out: EnetClientOutput,
  ): EnetVerdict {
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
    this.#link.dropOutgoing(); // only the CONNECT can be outstanding, and this is its acknowledgement
    this.#outgoingPeerId = command.outgoingPeerId;
    this.#incomingSessionId = command.incomingSessionId & 3;
    this.#outgoingSessionId = command.outgoingSessionId & 3;
    this.#link.mtu = Math.min(this.#link.mtu, clampMtu(command.mtu));
    this.#link.openChannels(Math.min(this.#requestedChannels, command.channelCount));
    this.#state = "connected";
    out.events.push("connected");
    return "ack"; // the host becomes connected when this acknowledgement arrives
  }

  #close(cause: EnetClientDisconnectCause): void {
    this.#state = "disconnected";
    this.#disconnectCause = cause;
    this.#link.close();
  }

  #output(): EnetClientOutput {
    return { datagrams: [], delivered: [], events: [] };
  }

  #flush(nowMs: number, out: EnetClientOutput): EnetClientOutput {
    const known = this.#outgoingPeerId !== ENET_MAXIMUM_PEER_ID;
    const header = { peerId: this.#outgoingPeerId, sessionId: known ? this.#outgoingSessionId : 0 };
    this.#link.flush(nowMs, header, out.datagrams);
    return out;
  }
}
