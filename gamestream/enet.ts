/**
 * ENet 1.3 wire protocol for the GameStream control stream (docs/gamestream-protocol.md §6.1, §14): a codec
 * for datagrams and a pure host-side peer state machine.
 *
 * Why our own ENet in TypeScript rather than Debian's libenet: the control stream carries at most a few hundred small
 * messages per second (input, pings), so the JS cost is irrelevant; a pure state machine with the clock passed in
 * (`nowMs`) is testable without sockets; and libenet would add a C dependency plus a second event loop. It also
 * sidesteps the §14 pitfalls of stock 1.3.17 (IPv4 only, no self-timed retransmits): the caller owns the socket,
 * demultiplexes by remote address and calls `tick` as often as it likes.
 *
 * Wire facts (ENet `protocol.h`): every integer is big-endian. Header = `u16 peerID` (low 12 bits peer, bits 12–13
 * session, bit 14 compressed, bit 15 sentTime present) then `u16 sentTime` only when bit 15 is set. Commands follow,
 * each `u8 command` (low 4 bits number, 0x80 acknowledge, 0x40 unsequenced), `u8 channelID`,
 * `u16 reliableSequenceNumber`, then a fixed body per command and, for the send commands, `dataLength` bytes.
 * Checksums and compression are never enabled by Moonlight or Sunshine (§6.1).
 */

// ---------------------------------------------------------------------------------------------------------------
// Constants

export const ENET_COMMAND = {
  ACKNOWLEDGE: 1,
  CONNECT: 2,
  VERIFY_CONNECT: 3,
  DISCONNECT: 4,
  PING: 5,
  SEND_RELIABLE: 6,
  SEND_UNRELIABLE: 7,
  SEND_FRAGMENT: 8,
  SEND_UNSEQUENCED: 9,
  BANDWIDTH_LIMIT: 10,
  THROTTLE_CONFIGURE: 11,
  SEND_UNRELIABLE_FRAGMENT: 12,
} as const;

const COMMAND_MASK = 0x0f;
const COMMAND_FLAG_ACKNOWLEDGE = 0x80;
const COMMAND_FLAG_UNSEQUENCED = 0x40;
const HEADER_FLAG_COMPRESSED = 1 << 14;
const HEADER_FLAG_SENT_TIME = 1 << 15;
const HEADER_SESSION_MASK = 3 << 12;
const HEADER_SESSION_SHIFT = 12;
/** Peer ID 0xFFF = "no peer yet"; only CONNECT may use it. */
export const ENET_MAXIMUM_PEER_ID = 0xfff;
/** Channel 0xFF carries connection-level commands (connect, verify, disconnect, ping, limits). */
export const ENET_CONNECTION_CHANNEL = 0xff;
export const ENET_MINIMUM_MTU = 576;
export const ENET_MAXIMUM_MTU = 4096;
export const ENET_MINIMUM_WINDOW_SIZE = 4096;
export const ENET_MAXIMUM_WINDOW_SIZE = 65536;
export const ENET_MAXIMUM_CHANNEL_COUNT = 255;
/** The cgutman/enet fork's default MTU, which Moonlight negotiates (§6.1, §14). */
export const ENET_MOONLIGHT_MTU = 900;
/** Moonlight asks for 0x30 channels (§6.1). */
export const ENET_MOONLIGHT_CHANNEL_COUNT = 48;
/** Stock ENet peer timeouts (§14): limit 32, minimum 5 s, maximum 30 s. */
export const ENET_DEFAULT_TIMEOUT_LIMIT = 32;
export const ENET_DEFAULT_TIMEOUT_MINIMUM_MS = 5000;
export const ENET_DEFAULT_TIMEOUT_MAXIMUM_MS = 30000;
/** ENET_PEER_PING_INTERVAL and ENET_PEER_DEFAULT_ROUND_TRIP_TIME. */
export const ENET_PING_INTERVAL_MS = 500;
const ENET_INITIAL_ROUND_TRIP_MS = 500;
/** ENET_PEER_UNSEQUENCED_WINDOW_SIZE: duplicates of unsequenced groups are filtered within this many groups. */
const UNSEQUENCED_WINDOW_SIZE = 1024;
const HEADER_SIZE_WITH_TIME = 4;

const COMMAND_SIZES: Record<number, number> = {
  [ENET_COMMAND.ACKNOWLEDGE]: 8,
  [ENET_COMMAND.CONNECT]: 48,
  [ENET_COMMAND.VERIFY_CONNECT]: 44,
  [ENET_COMMAND.DISCONNECT]: 8,
  [ENET_COMMAND.PING]: 4,
  [ENET_COMMAND.SEND_RELIABLE]: 6,
  [ENET_COMMAND.SEND_UNRELIABLE]: 8,
  [ENET_COMMAND.SEND_FRAGMENT]: 24,
  [ENET_COMMAND.SEND_UNSEQUENCED]: 8,
  [ENET_COMMAND.BANDWIDTH_LIMIT]: 12,
  [ENET_COMMAND.THROTTLE_CONFIGURE]: 16,
  [ENET_COMMAND.SEND_UNRELIABLE_FRAGMENT]: 24,
};
const FRAGMENT_COMMAND_SIZE = 24;

// ---------------------------------------------------------------------------------------------------------------
// Codec types

export interface EnetHeader {
  peerId: number;
  sessionId: number;
  /** Present only when the sender set the sentTime flag (it does whenever a command needs an acknowledgement). */
  sentTime: number | null;
}

interface CommandBase {
  channelId: number;
  reliableSequenceNumber: number;
  /** Sender wants an ACKNOWLEDGE for this command. */
  acknowledge: boolean;
  unsequenced: boolean;
}

export interface EnetConnectParameters {
  outgoingPeerId: number;
  incomingSessionId: number;
  outgoingSessionId: number;
  mtu: number;
  windowSize: number;
  channelCount: number;
  incomingBandwidth: number;
  outgoingBandwidth: number;
  packetThrottleInterval: number;
  packetThrottleAcceleration: number;
  packetThrottleDeceleration: number;
  connectId: number;
}

export interface EnetFragmentFields {
  startSequenceNumber: number;
  fragmentCount: number;
  fragmentNumber: number;
  totalLength: number;
  fragmentOffset: number;
  payload: Uint8Array;
}

export type EnetCommand =
  & CommandBase
  & (
    | { kind: "acknowledge"; receivedReliableSequenceNumber: number; receivedSentTime: number }
    | ({ kind: "connect"; data: number } & EnetConnectParameters)
    | ({ kind: "verify_connect" } & EnetConnectParameters)
    | { kind: "disconnect"; data: number }
    | { kind: "ping" }
    | { kind: "send_reliable"; payload: Uint8Array }
    | { kind: "send_unreliable"; unreliableSequenceNumber: number; payload: Uint8Array }
    | { kind: "send_unsequenced"; unsequencedGroup: number; payload: Uint8Array }
    | ({ kind: "send_fragment" } & EnetFragmentFields)
    | ({ kind: "send_unreliable_fragment" } & EnetFragmentFields)
    | { kind: "bandwidth_limit"; incomingBandwidth: number; outgoingBandwidth: number }
    | { kind: "throttle_configure"; interval: number; acceleration: number; deceleration: number }
  );

export type EnetCommandKind = EnetCommand["kind"];

export interface EnetDatagram {
  header: EnetHeader;
  commands: EnetCommand[];
}

export type EnetDecodeErrorCode =
  | "too_short"
  | "too_long"
  | "compressed"
  | "unknown_command"
  | "truncated_command"
  | "no_commands";

export class EnetDecodeError extends Error {
  override readonly name = "EnetDecodeError";
  constructor(readonly code: EnetDecodeErrorCode, message: string) {
    super(message);
  }
}

export type EnetDecodeResult = { ok: true; datagram: EnetDatagram } | { ok: false; error: EnetDecodeError };

const KIND_TO_NUMBER: Record<EnetCommandKind, number> = {
  acknowledge: ENET_COMMAND.ACKNOWLEDGE,
  connect: ENET_COMMAND.CONNECT,
  verify_connect: ENET_COMMAND.VERIFY_CONNECT,
  disconnect: ENET_COMMAND.DISCONNECT,
  ping: ENET_COMMAND.PING,
  send_reliable: ENET_COMMAND.SEND_RELIABLE,
  send_unreliable: ENET_COMMAND.SEND_UNRELIABLE,
  send_fragment: ENET_COMMAND.SEND_FRAGMENT,
  send_unsequenced: ENET_COMMAND.SEND_UNSEQUENCED,
  bandwidth_limit: ENET_COMMAND.BANDWIDTH_LIMIT,
  throttle_configure: ENET_COMMAND.THROTTLE_CONFIGURE,
  send_unreliable_fragment: ENET_COMMAND.SEND_UNRELIABLE_FRAGMENT,
};

// ---------------------------------------------------------------------------------------------------------------
// Decoding

/** Parses one UDP datagram. Rejects it whole on any malformed command (ENet itself stops at the first one). */
export function decodeDatagram(bytes: Uint8Array): EnetDecodeResult {
  const fail = (code: EnetDecodeErrorCode, message: string): EnetDecodeResult => ({
    ok: false,
    error: new EnetDecodeError(code, message),
  });
  if (bytes.length < 2) return fail("too_short", `datagram of ${bytes.length} bytes has no header`);
  if (bytes.length > ENET_MAXIMUM_MTU) {
    return fail("too_long", `datagram of ${bytes.length} bytes exceeds 4096`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rawPeerId = view.getUint16(0);
  if (rawPeerId & HEADER_FLAG_COMPRESSED) return fail("compressed", "compressed datagrams are not supported");
  let offset = 2;
  let sentTime: number | null = null;
  if (rawPeerId & HEADER_FLAG_SENT_TIME) {
    if (bytes.length < 4) return fail("too_short", "header announces sentTime but datagram ends");
    sentTime = view.getUint16(2);
    offset = 4;
  }
  const header: EnetHeader = {
    peerId: rawPeerId & ENET_MAXIMUM_PEER_ID,
    sessionId: (rawPeerId & HEADER_SESSION_MASK) >> HEADER_SESSION_SHIFT,
    sentTime,
  };
  const commands: EnetCommand[] = [];
  while (offset < bytes.length) {
    const commandByte = bytes[offset];
    const number = commandByte & COMMAND_MASK;
    const size = COMMAND_SIZES[number];
    if (size === undefined) return fail("unknown_command", `unknown command number ${number} at ${offset}`);
    if (offset + size > bytes.length) {
      return fail("truncated_command", `command ${number} at ${offset} truncated`);
    }
    const base: CommandBase = {
      channelId: bytes[offset + 1],
      reliableSequenceNumber: view.getUint16(offset + 2),
      acknowledge: (commandByte & COMMAND_FLAG_ACKNOWLEDGE) !== 0,
      unsequenced: (commandByte & COMMAND_FLAG_UNSEQUENCED) !== 0,
    };
    const u16 = (at: number) => view.getUint16(offset + at);
    const u32 = (at: number) => view.getUint32(offset + at);
    let dataLength = 0;
    let dataAt = 0;
    const takeData = (lengthAt: number): Uint8Array | null => {
      dataLength = u16(lengthAt);
      dataAt = offset + size;
      if (dataAt + dataLength > bytes.length) return null;
      return bytes.slice(dataAt, dataAt + dataLength);
    };
    const connectParameters = (): EnetConnectParameters => ({
      outgoingPeerId: u16(4),
      incomingSessionId: bytes[offset + 6],
      outgoingSessionId: bytes[offset + 7],
      mtu: u32(8),
      windowSize: u32(12),
      channelCount: u32(16),
      incomingBandwidth: u32(20),
      outgoingBandwidth: u32(24),
      packetThrottleInterval: u32(28),
      packetThrottleAcceleration: u32(32),
      packetThrottleDeceleration: u32(36),
      connectId: u32(40),
    });
    let command: EnetCommand;
    switch (number) {
      case ENET_COMMAND.ACKNOWLEDGE:
        command = {
          ...base,
          kind: "acknowledge",
          receivedReliableSequenceNumber: u16(4),
          receivedSentTime: u16(6),
        };
        break;
      case ENET_COMMAND.CONNECT:
        command = { ...base, kind: "connect", ...connectParameters(), data: u32(44) };
        break;
      case ENET_COMMAND.VERIFY_CONNECT:
        command = { ...base, kind: "verify_connect", ...connectParameters() };
        break;
      case ENET_COMMAND.DISCONNECT:
        command = { ...base, kind: "disconnect", data: u32(4) };
        break;
      case ENET_COMMAND.PING:
        command = { ...base, kind: "ping" };
        break;
      case ENET_COMMAND.BANDWIDTH_LIMIT:
        command = { ...base, kind: "bandwidth_limit", incomingBandwidth: u32(4), outgoingBandwidth: u32(8) };
        break;
      case ENET_COMMAND.THROTTLE_CONFIGURE:
        command = {
          ...base,
          kind: "throttle_configure",
          interval: u32(4),
          acceleration: u32(8),
          deceleration: u32(12),
        };
        break;
      case ENET_COMMAND.SEND_RELIABLE: {
        const payload = takeData(4);
        if (!payload) return fail("truncated_command", `reliable data at ${offset} runs past the datagram`);
        command = { ...base, kind: "send_reliable", payload };
        break;
      }
      case ENET_COMMAND.SEND_UNRELIABLE: {
        const payload = takeData(6);
        if (!payload) return fail("truncated_command", `unreliable data at ${offset} runs past the datagram`);
        command = { ...base, kind: "send_unreliable", unreliableSequenceNumber: u16(4), payload };
        break;
      }
      case ENET_COMMAND.SEND_UNSEQUENCED: {
        const payload = takeData(6);
        if (!payload) {
          return fail("truncated_command", `unsequenced data at ${offset} runs past the datagram`);
        }
        command = { ...base, kind: "send_unsequenced", unsequencedGroup: u16(4), payload };
        break;
      }
      default: {
        // SEND_FRAGMENT and SEND_UNRELIABLE_FRAGMENT share one layout.
        const payload = takeData(6);
        if (!payload) return fail("truncated_command", `fragment data at ${offset} runs past the datagram`);
        command = {
          ...base,
          kind: number === ENET_COMMAND.SEND_FRAGMENT ? "send_fragment" : "send_unreliable_fragment",
          startSequenceNumber: u16(4),
          fragmentCount: u32(8),
          fragmentNumber: u32(12),
          totalLength: u32(16),
          fragmentOffset: u32(20),
          payload,
        };
      }
    }
    commands.push(command);
    offset += size + dataLength;
  }
  if (commands.length === 0) return fail("no_commands", "datagram carries no command");
  return { ok: true, datagram: { header, commands } };
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

/** Encoded size of one command including its data. */
export function encodedCommandSize(command: EnetCommand): number {
  const size = COMMAND_SIZES[KIND_TO_NUMBER[command.kind]];
  return "payload" in command ? size + command.payload.length : size;
}

function writeCommand(view: DataView, bytes: Uint8Array, offset: number, command: EnetCommand): number {
  const flags = (command.acknowledge ? COMMAND_FLAG_ACKNOWLEDGE : 0) |
    (command.unsequenced ? COMMAND_FLAG_UNSEQUENCED : 0);
  bytes[offset] = KIND_TO_NUMBER[command.kind] | flags;
  bytes[offset + 1] = command.channelId;
  view.setUint16(offset + 2, command.reliableSequenceNumber);
  const u16 = (at: number, value: number) => view.setUint16(offset + at, value);
  const u32 = (at: number, value: number) => view.setUint32(offset + at, value >>> 0);
  const connectParameters = (c: EnetConnectParameters) => {
    u16(4, c.outgoingPeerId);
    bytes[offset + 6] = c.incomingSessionId;
    bytes[offset + 7] = c.outgoingSessionId;
    u32(8, c.mtu);
    u32(12, c.windowSize);
    u32(16, c.channelCount);
    u32(20, c.incomingBandwidth);
    u32(24, c.outgoingBandwidth);
    u32(28, c.packetThrottleInterval);
    u32(32, c.packetThrottleAcceleration);
    u32(36, c.packetThrottleDeceleration);
    u32(40, c.connectId);
  };
  const size = COMMAND_SIZES[KIND_TO_NUMBER[command.kind]];
  switch (command.kind) {
    case "acknowledge":
      u16(4, command.receivedReliableSequenceNumber);
      u16(6, command.receivedSentTime);
      break;
    case "connect":
      connectParameters(command);
      u32(44, command.data);
      break;
    case "verify_connect":
      connectParameters(command);
      break;
    case "disconnect":
      u32(4, command.data);
      break;
    case "ping":
      break;
    case "bandwidth_limit":
      u32(4, command.incomingBandwidth);
      u32(8, command.outgoingBandwidth);
      break;
    case "throttle_configure":
      u32(4, command.interval);
      u32(8, command.acceleration);
      u32(12, command.deceleration);
      break;
    case "send_reliable":
      u16(4, command.payload.length);
      break;
    case "send_unreliable":
      u16(4, command.unreliableSequenceNumber);
      u16(6, command.payload.length);
      break;
    case "send_unsequenced":
      u16(4, command.unsequencedGroup);
      u16(6, command.payload.length);
      break;
    case "send_fragment":
    case "send_unreliable_fragment":
      u16(4, command.startSequenceNumber);
      u16(6, command.payload.length);
      u32(8, command.fragmentCount);
      u32(12, command.fragmentNumber);
      u32(16, command.totalLength);
      u32(20, command.fragmentOffset);
      break;
  }
  if ("payload" in command) bytes.set(command.payload, offset + size);
  return offset + encodedCommandSize(command);
}

/** Serialises a datagram. The sentTime flag is set exactly when `header.sentTime` is not null. */
export function encodeDatagram(header: EnetHeader, commands: readonly EnetCommand[]): Uint8Array {
  const headerSize = header.sentTime === null ? 2 : 4;
  const total = commands.reduce((sum, c) => sum + encodedCommandSize(c), headerSize);
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  const flags = header.sentTime === null ? 0 : HEADER_FLAG_SENT_TIME;
  view.setUint16(
    0,
    (header.peerId & ENET_MAXIMUM_PEER_ID) | ((header.sessionId & 3) << HEADER_SESSION_SHIFT) | flags,
  );
  if (header.sentTime !== null) view.setUint16(2, header.sentTime & 0xffff);
  let offset = headerSize;
  for (const command of commands) offset = writeCommand(view, bytes, offset, command);
  return bytes;
}

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

export interface EnetDelivery {
  channel: number;
  payload: Uint8Array;
}

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

/** Largest message we send or reassemble; control messages are tens of bytes, input packets under 64. */
export const ENET_MAX_PACKET_BYTES = 64 * 1024;
/** Fragments of a 64 KiB message at the minimum MTU (576 − 28 = 548 bytes each) number 120; round up. */
export const ENET_MAX_FRAGMENT_COUNT = 128;
/** Out-of-order reliable data held per peer before we stop acknowledging (the sender then retransmits). */
export const ENET_MAX_BUFFERED_INCOMING_BYTES = 256 * 1024;
export const ENET_MAX_BUFFERED_INCOMING_COMMANDS = 1024;
/** Bytes queued for sending but not yet acknowledged; beyond this `send` refuses. */
export const ENET_MAX_OUTGOING_BYTES = 1024 * 1024;
/** Reliable commands in flight at once, far below ENet's 4096-sequence reliable window. */
const MAX_RELIABLE_IN_FLIGHT = 256;

type PendingIncoming =
  | { kind: "message"; payload: Uint8Array }
  | {
    kind: "fragments";
    fragmentCount: number;
    totalLength: number;
    received: Uint8Array;
    remaining: number;
    buffer: Uint8Array;
  };

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
  reliable: boolean;
  firstSentMs: number | null;
  lastSentMs: number;
  retransmitTimeoutMs: number;
  sendAttempts: number;
}

const seqAfter = (a: number, b: number): number => (a - b) & 0xffff;

/**
 * One ENet peer seen from the host: accepts a single CONNECT, then delivers reliable data per channel in order,
 * acknowledges, retransmits, pings and times out. Feed it datagrams from one remote address with `receive`, call
 * `tick` periodically (≤ 10 ms keeps retransmits prompt, §14), and send what both return.
 */
export class EnetHostPeer {
  #state: EnetPeerState = "listening";
  readonly #incomingPeerId: number;
  readonly #hostMtu: number;
  readonly #channelLimit: number;
  readonly #timeoutLimit: number;
  readonly #timeoutMinimumMs: number;
  readonly #timeoutMaximumMs: number;
  readonly #pingIntervalMs: number;

  #outgoingPeerId = ENET_MAXIMUM_PEER_ID;
  #incomingSessionId = 0xff;
  #outgoingSessionId = 0xff;
  #connectId = 0;
  #connectData = 0;
  #mtu = ENET_MOONLIGHT_MTU;
  #channelCount = 0;

  #incomingChannels: IncomingChannel[] = [];
  #outgoingChannels: OutgoingChannel[] = [];
  #connectionReliableSequence = 0;
  #incomingUnsequencedBase = 0;
  #unsequencedWindow = new Uint32Array(UNSEQUENCED_WINDOW_SIZE / 32);
  #outgoingUnsequencedGroup = 0;
  #bufferedIncomingBytes = 0;
  #bufferedIncomingCommands = 0;

  #pendingAcks: EnetCommand[] = [];
  #queued: OutgoingCommand[] = [];
  #inFlight: OutgoingCommand[] = [];
  #outgoingBytes = 0;

  #lastReceiveMs = 0;
  #roundTripMs = ENET_INITIAL_ROUND_TRIP_MS;
  #roundTripVarianceMs = 0;
  #stats: EnetPeerStats = {
    datagramsReceived: 0,
    datagramsDropped: 0,
    commandsDropped: 0,
    retransmissions: 0,
    roundTripMs: ENET_INITIAL_ROUND_TRIP_MS,
  };

  constructor(options: EnetHostPeerOptions = {}) {
    this.#incomingPeerId = options.incomingPeerId ?? 0;
    this.#hostMtu = clamp(options.mtu ?? ENET_MOONLIGHT_MTU, ENET_MINIMUM_MTU, ENET_MAXIMUM_MTU);
    this.#channelLimit = clamp(
      options.channelLimit ?? ENET_MAXIMUM_CHANNEL_COUNT,
      1,
      ENET_MAXIMUM_CHANNEL_COUNT,
    );
    this.#timeoutLimit = options.timeoutLimit ?? ENET_DEFAULT_TIMEOUT_LIMIT;
    this.#timeoutMinimumMs = options.timeoutMinimumMs ?? ENET_DEFAULT_TIMEOUT_MINIMUM_MS;
    this.#timeoutMaximumMs = options.timeoutMaximumMs ?? ENET_DEFAULT_TIMEOUT_MAXIMUM_MS;
    this.#pingIntervalMs = options.pingIntervalMs ?? ENET_PING_INTERVAL_MS;
    if (this.#incomingPeerId < 0 || this.#incomingPeerId >= ENET_MAXIMUM_PEER_ID) {
      throw new RangeError(`incomingPeerId ${this.#incomingPeerId} outside 0..4094`);
    }
  }

  get state(): EnetPeerState {
    return this.#state;
  }

  get stats(): Readonly<EnetPeerStats> {
    return { ...this.#stats, roundTripMs: this.#roundTripMs };
  }

  /** Incoming bytes held for reassembly or reordering; bounded by ENET_MAX_BUFFERED_INCOMING_BYTES. */
  get bufferedIncomingBytes(): number {
    return this.#bufferedIncomingBytes;
  }

  /** Outgoing bytes queued or awaiting acknowledgement; bounded by ENET_MAX_OUTGOING_BYTES. */
  get bufferedOutgoingBytes(): number {
    return this.#outgoingBytes;
  }

  get pendingAcknowledgements(): number {
    return this.#pendingAcks.length;
  }

  receive(datagram: Uint8Array, nowMs: number): EnetOutput {
    const output: EnetOutput = { datagramsToSend: [], delivered: [], events: [] };
    this.#stats.datagramsReceived++;
    const decoded = decodeDatagram(datagram);
    if (!decoded.ok || !this.#acceptHeader(decoded.datagram.header)) {
      this.#stats.datagramsDropped++;
      return this.#flush(nowMs, output);
    }
    const { header, commands } = decoded.datagram;
    this.#lastReceiveMs = nowMs;
    for (const command of commands) {
      if (this.#state === "disconnected") break;
      const verdict = this.#handle(command, header, nowMs, output);
      if (verdict === "stop") {
        this.#stats.commandsDropped++;
        break;
      }
      if (verdict === "ack" && command.acknowledge && header.sentTime !== null) {
        this.#queueAck(command, header.sentTime);
      }
    }
    return this.#flush(nowMs, output);
  }

  /** Queues a message; it leaves with the next `receive` or `tick`. Large messages are fragmented (reliably). */
  send(channel: number, payload: Uint8Array, reliable: boolean): EnetSendResult {
    if (this.#state !== "connected") return { ok: false, error: "not_connected" };
    if (!Number.isInteger(channel) || channel < 0 || channel >= this.#channelCount) {
      return { ok: false, error: "bad_channel" };
    }
    if (payload.length > ENET_MAX_PACKET_BYTES) return { ok: false, error: "too_large" };
    if (this.#outgoingBytes + payload.length > ENET_MAX_OUTGOING_BYTES) {
      return { ok: false, error: "queue_full" };
    }
    const out = this.#outgoingChannels[channel];
    const fragmentLength = this.#mtu - HEADER_SIZE_WITH_TIME - FRAGMENT_COMMAND_SIZE;
    if (payload.length > fragmentLength) {
      const fragmentCount = Math.ceil(payload.length / fragmentLength);
      const startSequenceNumber = (out.reliableSequence + 1) & 0xffff;
      for (let i = 0; i < fragmentCount; i++) {
        out.reliableSequence = (out.reliableSequence + 1) & 0xffff;
        const fragmentOffset = i * fragmentLength;
        this.#enqueue({
          kind: "send_fragment",
          channelId: channel,
          reliableSequenceNumber: out.reliableSequence,
          acknowledge: true,
          unsequenced: false,
          startSequenceNumber,
          fragmentCount,
          fragmentNumber: i,
          totalLength: payload.length,
          fragmentOffset,
          payload: payload.slice(fragmentOffset, fragmentOffset + fragmentLength),
        });
      }
      out.unreliableSequence = 0;
    } else if (reliable) {
      out.reliableSequence = (out.reliableSequence + 1) & 0xffff;
      out.unreliableSequence = 0;
      this.#enqueue({
        kind: "send_reliable",
        channelId: channel,
        reliableSequenceNumber: out.reliableSequence,
        acknowledge: true,
        unsequenced: false,
        payload: payload.slice(),
      });
    } else {
      out.unreliableSequence = (out.unreliableSequence + 1) & 0xffff;
      this.#enqueue({
        kind: "send_unreliable",
        channelId: channel,
        reliableSequenceNumber: out.reliableSequence,
        acknowledge: false,
        unsequenced: false,
        unreliableSequenceNumber: out.unreliableSequence,
        payload: payload.slice(),
      });
    }
    return { ok: true };
  }

  /** Sends an unsequenced message (no ordering, no acknowledgement, duplicates filtered by the receiver). */
  sendUnsequenced(channel: number, payload: Uint8Array): EnetSendResult {
    if (this.#state !== "connected") return { ok: false, error: "not_connected" };
    if (!Number.isInteger(channel) || channel < 0 || channel >= this.#channelCount) {
      return { ok: false, error: "bad_channel" };
    }
    if (payload.length > this.#mtu - HEADER_SIZE_WITH_TIME - COMMAND_SIZES[ENET_COMMAND.SEND_UNSEQUENCED]) {
      return { ok: false, error: "too_large" };
    }
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
    return { ok: true };
  }

  /**
   * Graceful disconnect: already-queued messages go first (so a termination message sent reliably just before
   * arrives, §14), then DISCONNECT; the "disconnect" event follows its acknowledgement or a timeout.
   */
  disconnect(data = 0): void {
    if (this.#state === "connected" || this.#state === "acknowledging_connect") {
      this.#enqueue(this.#connectionCommand({ kind: "disconnect", data }));
      this.#state = "disconnecting";
    } else if (this.#state === "listening") {
      this.#state = "disconnected";
    }
  }

  /** Retransmits overdue reliable commands, pings an idle peer, detects timeouts and flushes queued messages. */
  tick(nowMs: number): EnetOutput {
    const output: EnetOutput = { datagramsToSend: [], delivered: [], events: [] };
    if (this.#state === "listening" || this.#state === "disconnected") return output;
    const resend: OutgoingCommand[] = [];
    for (const sent of this.#inFlight) {
      if (sent.firstSentMs === null) continue;
      const elapsed = nowMs - sent.firstSentMs;
      const overdue = nowMs - sent.lastSentMs >= sent.retransmitTimeoutMs;
      // The maximum is enforced on every tick (not only when a retransmit is due) so a silent client is dropped
      // within timeoutMaximumMs even after its back-off has grown past it.
      if (
        elapsed >= this.#timeoutMaximumMs ||
        (overdue && 2 ** (sent.sendAttempts - 1) >= this.#timeoutLimit && elapsed >= this.#timeoutMinimumMs)
      ) {
        this.#reset();
        output.events.push({ type: "disconnect", cause: "timeout", data: 0 });
        return output;
      }
      if (!overdue) continue;
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
    return this.#flush(nowMs, output);
  }

  // --- internals ---------------------------------------------------------------------------------------------

  #acceptHeader(header: EnetHeader): boolean {
    if (this.#state === "disconnected") return false;
    if (header.peerId === ENET_MAXIMUM_PEER_ID) return true; // only CONNECT is honoured, see #handle
    if (this.#state === "listening") return false;
    return header.peerId === this.#incomingPeerId && header.sessionId === this.#incomingSessionId;
  }

  /** "ack": handled, acknowledge if asked; "skip": handled, no acknowledgement; "stop": drop rest of datagram. */
  #handle(
    command: EnetCommand,
    header: EnetHeader,
    nowMs: number,
    output: EnetOutput,
  ): "ack" | "skip" | "stop" {
    if (header.peerId === ENET_MAXIMUM_PEER_ID && command.kind !== "connect") return "stop";
    switch (command.kind) {
      case "connect":
        return this.#handleConnect(command, nowMs);
      case "acknowledge":
        this.#handleAcknowledge(command, nowMs, output);
        return "skip";
      case "disconnect": {
        if (this.#state === "listening") return "stop";
        const ack = command.acknowledge && header.sentTime !== null ? command : null;
        this.#reset();
        if (ack) this.#queueAck(ack, header.sentTime!);
        output.events.push({ type: "disconnect", cause: "peer", data: command.data });
        return "skip";
      }
      case "verify_connect":
        return "stop"; // only a connecting client accepts this
    }
    // Like ENet, data and pings are refused (not acknowledged) outside the connected state.
    if (this.#state !== "connected") return "stop";
    switch (command.kind) {
      case "ping":
      case "bandwidth_limit":
      case "throttle_configure":
        return "ack"; // no bandwidth limits or throttling on a LAN control stream; acknowledging is all
    }
    if (command.channelId >= this.#channelCount) return "stop"; // also refuses data on channel 0xFF
    switch (command.kind) {
      case "send_reliable":
        return this.#handleReliable(
          command.channelId,
          command.reliableSequenceNumber,
          command.payload,
          output,
        );
      case "send_fragment":
        return this.#handleFragment(command, output);
      case "send_unreliable": {
        const channel = this.#incomingChannels[command.channelId];
        // Only newer data counts (a repeat or an older datagram is dropped). Simplification: unreliable
        // data that overtook a missing reliable message is dropped, not held.
        const ahead = seqAfter(command.unreliableSequenceNumber, channel.unreliableSequence);
        if (command.reliableSequenceNumber === channel.reliableSequence && ahead > 0 && ahead < 0x8000) {
          channel.unreliableSequence = command.unreliableSequenceNumber;
          output.delivered.push({ channel: command.channelId, payload: command.payload });
        }
        return "skip";
      }
      case "send_unsequenced":
        if (this.#acceptUnsequenced(command.unsequencedGroup)) {
          output.delivered.push({ channel: command.channelId, payload: command.payload });
        }
        return "skip";
      case "send_unreliable_fragment":
        return "skip"; // Moonlight never sends these; dropping is legal for unreliable data
    }
  }

  #handleConnect(command: Extract<EnetCommand, { kind: "connect" }>, nowMs: number): "ack" | "skip" | "stop" {
    if (this.#state !== "listening") return "stop"; // a retransmitted CONNECT (or a second client): ignore
    if (command.channelCount < 1 || command.channelCount > ENET_MAXIMUM_CHANNEL_COUNT) return "stop";
    if (command.outgoingPeerId >= ENET_MAXIMUM_PEER_ID) return "stop";
    this.#channelCount = Math.min(command.channelCount, this.#channelLimit);
    this.#outgoingPeerId = command.outgoingPeerId;
    this.#connectId = command.connectId;
    this.#connectData = command.data;
    this.#mtu = Math.min(this.#hostMtu, clamp(command.mtu, ENET_MINIMUM_MTU, ENET_MAXIMUM_MTU));
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
    const windowSize = clamp(
      Math.min(ENET_MAXIMUM_WINDOW_SIZE, command.windowSize),
      ENET_MINIMUM_WINDOW_SIZE,
      ENET_MAXIMUM_WINDOW_SIZE,
    );
    this.#incomingChannels = Array.from({ length: this.#channelCount }, () => ({
      reliableSequence: 0,
      unreliableSequence: 0,
      pending: new Map(),
    }));
    this.#outgoingChannels = Array.from({ length: this.#channelCount }, () => ({
      reliableSequence: 0,
      unreliableSequence: 0,
    }));
    this.#state = "acknowledging_connect";
    this.#lastReceiveMs = nowMs;
    // The client compares throttle values and connectID with its own, so they are echoed verbatim.
    this.#enqueue(this.#connectionCommand({
      kind: "verify_connect",
      outgoingPeerId: this.#incomingPeerId,
      incomingSessionId: outgoingSession,
      outgoingSessionId: incomingSession,
      mtu: this.#mtu,
      windowSize,
      channelCount: this.#channelCount,
      incomingBandwidth: 0,
      outgoingBandwidth: 0,
      packetThrottleInterval: command.packetThrottleInterval,
      packetThrottleAcceleration: command.packetThrottleAcceleration,
      packetThrottleDeceleration: command.packetThrottleDeceleration,
      connectId: command.connectId,
    }));
    return "skip"; // VERIFY_CONNECT is the acknowledgement of CONNECT
  }

  #handleAcknowledge(
    command: Extract<EnetCommand, { kind: "acknowledge" }>,
    nowMs: number,
    output: EnetOutput,
  ) {
    const index = this.#inFlight.findIndex((c) =>
      c.command.channelId === command.channelId &&
      c.command.reliableSequenceNumber === command.receivedReliableSequenceNumber
    );
    if (index < 0) return;
    const [acked] = this.#inFlight.splice(index, 1);
    this.#outgoingBytes -= acked.size;
    const sample = (nowMs - command.receivedSentTime) & 0xffff;
    if (sample < 0x8000) this.#updateRoundTrip(sample);
    if (acked.command.kind === "verify_connect" && this.#state === "acknowledging_connect") {
      this.#state = "connected";
      output.events.push({
        type: "connect",
        data: this.#connectData,
        channelCount: this.#channelCount,
        mtu: this.#mtu,
      });
    } else if (acked.command.kind === "disconnect" && this.#state === "disconnecting") {
      this.#reset();
      output.events.push({ type: "disconnect", cause: "local", data: acked.command.data });
    }
  }

  /** ENet's RTT filter: rtt += (sample − rtt)/8, variance += (|sample − rtt| − variance)/4. */
  #updateRoundTrip(sampleMs: number): void {
    const difference = sampleMs - this.#roundTripMs;
    this.#roundTripMs += difference / 8;
    this.#roundTripVarianceMs += (Math.abs(difference) - this.#roundTripVarianceMs) / 4;
  }

  #handleReliable(
    channelId: number,
    sequence: number,
    payload: Uint8Array,
    output: EnetOutput,
  ): "ack" | "skip" | "stop" {
    const channel = this.#incomingChannels[channelId];
    const distance = seqAfter(sequence, channel.reliableSequence);
    if (distance === 0 || distance >= 0x8000 || channel.pending.has(sequence)) return "ack"; // duplicate
    if (!this.#reserveIncoming(payload.length)) return "skip"; // not acknowledged: the client will resend
    channel.pending.set(sequence, { kind: "message", payload });
    this.#dispatch(channelId, output);
    return "ack";
  }

  #handleFragment(
    command: Extract<EnetCommand, { kind: "send_fragment" }>,
    output: EnetOutput,
  ): "ack" | "skip" | "stop" {
    const { fragmentCount, fragmentNumber, totalLength, fragmentOffset, payload } = command;
    if (
      fragmentCount < 1 || fragmentCount > ENET_MAX_FRAGMENT_COUNT || fragmentNumber >= fragmentCount ||
      totalLength > ENET_MAX_PACKET_BYTES || totalLength < fragmentCount || fragmentOffset >= totalLength ||
      payload.length > totalLength - fragmentOffset ||
      seqAfter(command.reliableSequenceNumber, command.startSequenceNumber) !== fragmentNumber
    ) {
      return "stop";
    }
    const channel = this.#incomingChannels[command.channelId];
    const start = command.startSequenceNumber;
    const distance = seqAfter(start, channel.reliableSequence);
    if (distance === 0 || distance >= 0x8000) return "ack"; // the whole message was delivered already
    let entry = channel.pending.get(start);
    if (entry === undefined) {
      if (!this.#reserveIncoming(totalLength)) return "skip";
      entry = {
        kind: "fragments",
        fragmentCount,
        totalLength,
        received: new Uint8Array(fragmentCount),
        remaining: fragmentCount,
        buffer: new Uint8Array(totalLength),
      };
      channel.pending.set(start, entry);
    } else if (
      entry.kind !== "fragments" || entry.fragmentCount !== fragmentCount || entry.totalLength !== totalLength
    ) {
      return "stop";
    }
    if (!entry.received[fragmentNumber]) {
      entry.received[fragmentNumber] = 1;
      entry.remaining--;
      entry.buffer.set(payload, fragmentOffset);
    }
    if (entry.remaining === 0) this.#dispatch(command.channelId, output);
    return "ack";
  }

  #reserveIncoming(bytes: number): boolean {
    if (
      this.#bufferedIncomingBytes + bytes > ENET_MAX_BUFFERED_INCOMING_BYTES ||
      this.#bufferedIncomingCommands >= ENET_MAX_BUFFERED_INCOMING_COMMANDS
    ) {
      this.#stats.commandsDropped++;
      return false;
    }
    this.#bufferedIncomingBytes += bytes;
    this.#bufferedIncomingCommands++;
    return true;
  }

  #release(entry: PendingIncoming): void {
    this.#bufferedIncomingBytes -= entry.kind === "message" ? entry.payload.length : entry.totalLength;
    this.#bufferedIncomingCommands--;
  }

  /** Delivers every consecutive complete message, advancing the channel's reliable sequence. */
  #dispatch(channelId: number, output: EnetOutput): void {
    const channel = this.#incomingChannels[channelId];
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
      output.delivered.push({
        channel: channelId,
        payload: entry.kind === "message" ? entry.payload : entry.buffer,
      });
    }
  }

  #acceptUnsequenced(group: number): boolean {
    const index = group % UNSEQUENCED_WINDOW_SIZE;
    let extended = group;
    if (extended < this.#incomingUnsequencedBase) extended += 0x10000;
    // ENET_PEER_FREE_UNSEQUENCED_WINDOWS = 32: groups further ahead are discarded.
    if (extended >= this.#incomingUnsequencedBase + 32 * UNSEQUENCED_WINDOW_SIZE) return false;
    const base = (group - index) & 0xffff;
    if (base !== this.#incomingUnsequencedBase) {
      this.#incomingUnsequencedBase = base;
      this.#unsequencedWindow.fill(0);
    } else if (this.#unsequencedWindow[index >> 5] & (1 << (index & 31))) {
      return false;
    }
    this.#unsequencedWindow[index >> 5] |= 1 << (index & 31);
    return true;
  }

  #connectionCommand(
    body:
      | { kind: "ping" }
      | { kind: "disconnect"; data: number }
      | ({ kind: "verify_connect" } & EnetConnectParameters),
  ): EnetCommand {
    this.#connectionReliableSequence = (this.#connectionReliableSequence + 1) & 0xffff;
    return {
      ...body,
      channelId: ENET_CONNECTION_CHANNEL,
      reliableSequenceNumber: this.#connectionReliableSequence,
      acknowledge: true,
      unsequenced: false,
    };
  }

  #enqueue(command: EnetCommand): void {
    const size = encodedCommandSize(command);
    this.#outgoingBytes += size;
    this.#queued.push({
      command,
      size,
      reliable: command.acknowledge,
      firstSentMs: null,
      lastSentMs: 0,
      retransmitTimeoutMs: 0,
      sendAttempts: 0,
    });
  }

  #queueAck(command: EnetCommand, sentTime: number): void {
    // Bounded: at most one acknowledgement per received command, and commands per datagram are bounded by 4096 B.
    this.#pendingAcks.push({
      kind: "acknowledge",
      channelId: command.channelId,
      reliableSequenceNumber: command.reliableSequenceNumber,
      acknowledge: false,
      unsequenced: false,
      receivedReliableSequenceNumber: command.reliableSequenceNumber,
      receivedSentTime: sentTime,
    });
  }

  /** Packs acknowledgements, then queued commands, into MTU-sized datagrams. */
  #flush(nowMs: number, output: EnetOutput): EnetOutput {
    if (this.#outgoingPeerId === ENET_MAXIMUM_PEER_ID) {
      this.#pendingAcks = [];
      return output;
    }
    const budget = this.#mtu - HEADER_SIZE_WITH_TIME;
    const stillQueued: OutgoingCommand[] = [];
    let commands: EnetCommand[] = [];
    let used = 0;
    let needsTime = false;
    const emit = () => {
      if (commands.length === 0) return;
      output.datagramsToSend.push(encodeDatagram({
        peerId: this.#outgoingPeerId,
        sessionId: this.#outgoingSessionId & 3,
        sentTime: needsTime ? nowMs & 0xffff : null,
      }, commands));
      commands = [];
      used = 0;
      needsTime = false;
    };
    const add = (command: EnetCommand, size: number) => {
      if (used + size > budget) emit();
      commands.push(command);
      used += size;
      if (command.acknowledge) needsTime = true;
    };
    for (const ack of this.#pendingAcks) add(ack, encodedCommandSize(ack));
    this.#pendingAcks = [];
    for (const queued of this.#queued) {
      if (queued.reliable && this.#inFlight.length >= MAX_RELIABLE_IN_FLIGHT) {
        stillQueued.push(queued);
        continue;
      }
      add(queued.command, queued.size);
      if (queued.reliable) {
        queued.firstSentMs ??= nowMs;
        queued.lastSentMs = nowMs;
        queued.sendAttempts++;
        if (queued.retransmitTimeoutMs === 0) {
          queued.retransmitTimeoutMs = this.#roundTripMs + 4 * this.#roundTripVarianceMs;
        }
        this.#inFlight.push(queued);
      } else {
        this.#outgoingBytes -= queued.size;
      }
    }
    this.#queued = stillQueued;
    emit();
    return output;
  }

  #reset(): void {
    this.#state = "disconnected";
    this.#queued = [];
    this.#inFlight = [];
    this.#outgoingBytes = 0;
    for (const channel of this.#incomingChannels) channel.pending.clear();
    this.#bufferedIncomingBytes = 0;
    this.#bufferedIncomingCommands = 0;
  }
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}
