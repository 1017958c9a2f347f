/**
 * The client end of an ENet connection, as Moonlight's control stream uses it (§6.1): CONNECT with connect
 * data, acknowledge VERIFY_CONNECT, reliable messages in order per channel with retransmission, acks for
 * everything reliable the host sends. Pure (time injected); the wire codec is gamestream/enet.ts.
 */
import {
  decodeDatagram,
  encodeDatagram,
  ENET_CONNECTION_CHANNEL,
  ENET_MAXIMUM_PEER_ID,
} from "../../gamestream/mod.ts";
import type { EnetCommand, EnetHeader } from "../../gamestream/mod.ts";

/** Loopback tests: resend anything unacknowledged after this long. */
const RETRANSMIT_MS = 100;

export interface EnetClientOutput {
  datagrams: Uint8Array[];
  delivered: { channel: number; payload: Uint8Array }[];
  events: ("connected" | "disconnected")[];
}

interface InFlight {
  command: EnetCommand;
  lastSentMs: number;
}

export class EnetClientPeer {
  state: "idle" | "connecting" | "connected" | "disconnected" = "idle";
  #outgoingPeerId = ENET_MAXIMUM_PEER_ID;
  #outgoingSessionId = 0xff;
  #channelCount: number;
  #connectionSequence = 0;
  #sendSequence: number[];
  #receiveSequence: number[];
  #pending: Map<number, Uint8Array>[];
  #inFlight: InFlight[] = [];
  #acks: EnetCommand[] = [];

  constructor(channelCount = 48) {
    this.#channelCount = channelCount;
    this.#sendSequence = new Array(channelCount).fill(0);
    this.#receiveSequence = new Array(channelCount).fill(0);
    this.#pending = Array.from({ length: channelCount }, () => new Map());
  }

  connect(data: number, nowMs: number): EnetClientOutput {
    this.state = "connecting";
    this.#connectionSequence++;
    const command: EnetCommand = {
      kind: "connect",
      channelId: ENET_CONNECTION_CHANNEL,
      reliableSequenceNumber: this.#connectionSequence,
      acknowledge: true,
      unsequenced: false,
      data: data >>> 0,
      outgoingPeerId: 0,
      incomingSessionId: 0xff,
      outgoingSessionId: 0xff,
      mtu: 900,
      windowSize: 65536,
      channelCount: this.#channelCount,
      incomingBandwidth: 0,
      outgoingBandwidth: 0,
      packetThrottleInterval: 5000,
      packetThrottleAcceleration: 2,
      packetThrottleDeceleration: 2,
      connectId: Math.floor(Math.random() * 0xffffffff),
    };
    this.#inFlight.push({ command, lastSentMs: nowMs });
    return this.#output(nowMs, [command]);
  }

  send(channel: number, payload: Uint8Array, nowMs: number): EnetClientOutput {
    if (this.state !== "connected") throw new Error(`ENet client is ${this.state}`);
    this.#sendSequence[channel] = (this.#sendSequence[channel] + 1) & 0xffff;
    const command: EnetCommand = {
      kind: "send_reliable",
      channelId: channel,
      reliableSequenceNumber: this.#sendSequence[channel],
      acknowledge: true,
      unsequenced: false,
      payload,
    };
    this.#inFlight.push({ command, lastSentMs: nowMs });
    return this.#output(nowMs, [command]);
  }

  disconnect(nowMs: number): EnetClientOutput {
    if (this.state !== "connected") return this.#output(nowMs, []);
    this.state = "disconnected";
    return this.#output(nowMs, [{
      kind: "disconnect",
      channelId: ENET_CONNECTION_CHANNEL,
      reliableSequenceNumber: 0,
      acknowledge: false,
      unsequenced: true,
      data: 0,
    }]);
  }

  receive(bytes: Uint8Array, nowMs: number): EnetClientOutput {
    const out: EnetClientOutput = { datagrams: [], delivered: [], events: [] };
    const decoded = decodeDatagram(bytes);
    if (!decoded.ok) return out;
    const { header, commands } = decoded.datagram;
    for (const command of commands) this.#handle(command, header, out);
    const flushed = this.#output(nowMs, []);
    out.datagrams.push(...flushed.datagrams);
    return out;
  }

  tick(nowMs: number): EnetClientOutput {
    const resend = this.#inFlight.filter((f) => nowMs - f.lastSentMs >= RETRANSMIT_MS);
    for (const f of resend) f.lastSentMs = nowMs;
    return this.#output(nowMs, resend.map((f) => f.command));
  }

  #handle(command: EnetCommand, header: EnetHeader, out: EnetClientOutput): void {
    if (command.acknowledge && header.sentTime !== null) {
      this.#acks.push({
        kind: "acknowledge",
        channelId: command.channelId,
        reliableSequenceNumber: command.reliableSequenceNumber,
        acknowledge: false,
        unsequenced: false,
        receivedReliableSequenceNumber: command.reliableSequenceNumber,
        receivedSentTime: header.sentTime,
      });
    }
    switch (command.kind) {
      case "verify_connect":
        if (this.state !== "connecting") return;
        this.#outgoingPeerId = command.outgoingPeerId;
        this.#outgoingSessionId = command.outgoingSessionId;
        this.#inFlight = this.#inFlight.filter((f) => f.command.kind !== "connect");
        this.state = "connected";
        out.events.push("connected");
        return;
      case "acknowledge":
        this.#inFlight = this.#inFlight.filter((f) =>
          !(f.command.channelId === command.channelId &&
            f.command.reliableSequenceNumber === command.receivedReliableSequenceNumber)
        );
        return;
      case "disconnect":
        this.state = "disconnected";
        out.events.push("disconnected");
        return;
      case "send_reliable": {
        const channel = command.channelId;
        if (channel >= this.#channelCount) return;
        const ahead = (command.reliableSequenceNumber - this.#receiveSequence[channel]) & 0xffff;
        if (ahead === 0 || ahead > 0x7fff) return; // duplicate
        this.#pending[channel].set(command.reliableSequenceNumber, command.payload);
        for (;;) {
          const next = (this.#receiveSequence[channel] + 1) & 0xffff;
          const payload = this.#pending[channel].get(next);
          if (!payload) break;
          this.#pending[channel].delete(next);
          this.#receiveSequence[channel] = next;
          out.delivered.push({ channel, payload });
        }
        return;
      }
      case "send_unreliable":
      case "send_unsequenced":
        out.delivered.push({ channel: command.channelId, payload: command.payload });
        return;
      default:
        return; // pings (acknowledged above), bandwidth/throttle: nothing to do
    }
  }

  #output(nowMs: number, commands: EnetCommand[]): EnetClientOutput {
    const all = [...this.#acks, ...commands];
    this.#acks = [];
    const datagrams: Uint8Array[] = [];
    for (let i = 0; i < all.length; i += 16) {
      const batch = all.slice(i, i + 16);
      datagrams.push(encodeDatagram({
        peerId: this.#outgoingPeerId,
        sessionId: this.#outgoingPeerId === ENET_MAXIMUM_PEER_ID ? 0 : this.#outgoingSessionId & 3,
        sentTime: batch.some((c) => c.acknowledge) ? nowMs & 0xffff : null,
      }, batch));
    }
    return { datagrams, delivered: [], events: [] };
  }
}
