/**
 * The control stream's socket (§6): one UDP port, one ENet peer per admitted client address, AES-GCM envelopes
 * opened and sealed here, messages handed to the session that accepted the connection.
 *
 * Why ENet in TypeScript (enet.ts) rather than Debian's libenet through the native core: control traffic is
 * tens of messages per second, far from the per-packet path the native core exists for; our own peer times its
 * own retransmits (stock libenet 1.3.17 does not, §14); and it keeps the control plane's parsing fuzzable in the
 * same language as the rest.
 *
 * Hostile-network rules: no peer state exists for an address until it sends a well-formed CONNECT that the
 * session admits (its connect data, from the session owner's IP); everything else from an unknown address is
 * dropped and counted. Inside a connection, a forged or replayed envelope is dropped and counted, never fatal:
 * ending the session on one bad datagram would hand anyone who can aim a datagram at the port a way to end it.
 *
 * `ControlEndpoint` is the socket-free core (datagrams and `nowMs` in, datagrams out through `send`);
 * `startControlServer` puts a UDP socket and a service timer around it.
 *
 * Section numbers (§) refer to docs/gamestream-protocol.md.
 */
import { ENET_MAXIMUM_PEER_ID, EnetHostPeer, parseConnectRequest } from "./enet.ts";
import type { EnetOutput } from "./enet.ts";
import { ControlCipher, ControlError } from "./control.ts";
import { isLoggedOccurrence } from "../host/log.ts";
import type { Logger } from "../host/log.ts";

/** ENet retransmits and pings are only as prompt as the service loop (§14: ≤ 10 ms). */
const SERVICE_INTERVAL_MS = 10;
/** Sunshine's ping_timeout: a session whose client sends nothing for 10 s is over. */
export const CONTROL_IDLE_TIMEOUT_MS = 10_000;
/** An admitted peer that never completes the handshake is dropped after this long (a lost VERIFY_CONNECT's
 * retransmits end long before: ENet gives up within 5–30 s, and Moonlight's own connect timeout is 10 s). */
const UNBOUND_PEER_TTL_MS = 15_000;
/**
 * Peers per source IP. Moonlight opens one control connection per session; a client that restarts it from a new
 * source port while its old peer still drains needs a second. At the cap, a new CONNECT replaces the IP's oldest
 * peer that has not completed its handshake, so half-open peers can never lock the owner out.
 */
export const MAX_PEERS_PER_IP = 2;
/** Peers in total. Only the session owner's IP is admitted, so this is a memory bound, not a working limit. */
export const MAX_PEERS = 16;

export type ControlCloseCause = "peer" | "timeout" | "local";

export interface ControlSessionHandler {
  key: Uint8Array;
  onMessage(type: number, payload: Uint8Array): void;
  onClosed(cause: ControlCloseCause): void;
}

export interface ControlConnection {
  readonly remote: string;
  /** ENet's smoothed round-trip estimate of this peer, from acknowledgements of what the host sent. */
  readonly roundTripMs: number;
  send(type: number, payload: Uint8Array): void;
  /** Sends `payload` reliably, then disconnects once it is acknowledged (or the peer is gone). */
  close(finalType?: number, finalPayload?: Uint8Array): void;
}

/** A remote address with IPv4-mapped IPv6 written as plain IPv4, so it compares with the owner's IP. */
export interface ControlRemote {
  ip: string;
  port: number;
}

export interface ControlPolicy {
  /**
   * Before any state: may a CONNECT with this connect data from this address get a peer? Refusals are counted;
   * the client hears nothing and times out.
   */
  admit(connectData: number, remote: ControlRemote): boolean;
  /** The handshake completed: return a handler to bind the connection, null to refuse (it is disconnected). */
  accept(
    connectData: number,
    remote: ControlRemote,
    connection: ControlConnection,
  ): ControlSessionHandler | null;
}

/** What the control port turned away, by reason. */
export interface ControlServerStats {
  /** Datagrams from an address without a peer that were not a well-formed CONNECT (garbage, strays, scans). */
  strayDatagrams: number;
  /** Well-formed CONNECTs the session did not admit (wrong connect data, not from the owner, no session). */
  refusedConnects: number;
  /** Half-open peers replaced, or CONNECTs dropped, because a cap was reached. */
  peerCapEvictions: number;
  /** Envelopes whose AES-GCM tag did not verify. */
  forgedMessages: number;
  /** Authentic envelopes whose sequence was opened before or is older than the replay window. */
  replayedMessages: number;
  /** Messages that were not an envelope at all, or whose handler threw. */
  malformedMessages: number;
}

export interface ControlEndpointOptions extends ControlPolicy {
  log: Logger;
  send(datagram: Uint8Array, to: ControlRemote): void;
  /** The host peer ID handed out in VERIFY_CONNECT; random by default so a blind spoofer must guess it. */
  peerId?: () => number;
}

interface PeerEntry {
  key: string;
  peer: EnetHostPeer;
  remote: ControlRemote;
  handler: ControlSessionHandler | null;
  cipher: ControlCipher | null;
  connection: ControlConnection;
  createdMs: number;
  lastActivityMs: number;
  closing: boolean;
}

export function controlRemote(hostname: string, port: number): ControlRemote {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(hostname);
  return { ip: mapped ? mapped[1] : hostname, port };
}

const keyOf = (remote: ControlRemote) =>
  `${remote.ip.includes(":") ? `[${remote.ip}]` : remote.ip}:${remote.port}`;

const randomPeerId = () => crypto.getRandomValues(new Uint16Array(1))[0] % ENET_MAXIMUM_PEER_ID;

/** The control port's state without the socket: feed it datagrams and ticks; it sends through `options.send`. */
export class ControlEndpoint {
  readonly #peers = new Map<string, PeerEntry>();
  readonly #stats: ControlServerStats = {
    strayDatagrams: 0,
    refusedConnects: 0,
    peerCapEvictions: 0,
    forgedMessages: 0,
    replayedMessages: 0,
    malformedMessages: 0,
  };
  #now = 0;

  constructor(private readonly options: ControlEndpointOptions) {}

  get stats(): Readonly<ControlServerStats> {
    return { ...this.#stats };
  }

  /** Everything dropped, all reasons together. */
  get dropped(): number {
    const s = this.#stats;
    return s.strayDatagrams + s.refusedConnects + s.peerCapEvictions + s.forgedMessages + s.replayedMessages +
      s.malformedMessages;
  }

  get peerCount(): number {
    return this.#peers.size;
  }

  receive(datagram: Uint8Array, remote: ControlRemote, nowMs: number): void {
    this.#now = nowMs;
    const key = keyOf(remote);
    let entry = this.#peers.get(key);
    if (!entry) {
      const request = parseConnectRequest(datagram);
      if (!request) {
        this.#stats.strayDatagrams++;
        return;
      }
      if (!this.options.admit(request.connectData, remote)) {
        const refused = ++this.#stats.refusedConnects;
        if (isLoggedOccurrence(refused)) {
          this.options.log.info("control connect refused", { remote: key, refused });
        }
        return;
      }
      if (!this.#makeRoom(remote)) {
        this.#stats.peerCapEvictions++;
        return;
      }
      entry = this.#createEntry(key, remote);
      this.#peers.set(key, entry);
    }
    this.#process(entry, entry.peer.receive(datagram, nowMs));
  }

  tick(nowMs: number): void {
    this.#now = nowMs;
    for (const entry of [...this.#peers.values()]) {
      if (!this.#peers.has(entry.key)) continue;
      this.#process(entry, entry.peer.tick(nowMs));
      if (!this.#peers.has(entry.key)) continue;
      if (entry.peer.state === "disconnected") {
        this.#finish(entry, "local");
      } else if (entry.handler && nowMs - entry.lastActivityMs > CONTROL_IDLE_TIMEOUT_MS) {
        this.options.log.info("control stream idle, ending session", { remote: entry.key });
        entry.connection.close();
        this.#peers.delete(entry.key);
      } else if (!entry.handler && !entry.closing && nowMs - entry.createdMs > UNBOUND_PEER_TTL_MS) {
        this.#peers.delete(entry.key);
      }
    }
  }

  close(): void {
    for (const entry of [...this.#peers.values()]) this.#finish(entry, "local");
  }

  /** Whether a new peer for `remote` fits, after evicting that IP's oldest half-open peer if need be. */
  #makeRoom(remote: ControlRemote): boolean {
    const sameIp = [...this.#peers.values()].filter((e) => e.remote.ip === remote.ip);
    if (sameIp.length < MAX_PEERS_PER_IP && this.#peers.size < MAX_PEERS) return true;
    const halfOpen = sameIp.filter((e) => e.handler === null && !e.closing)
      .sort((a, b) => a.createdMs - b.createdMs)[0];
    if (!halfOpen) return false;
    this.#stats.peerCapEvictions++;
    this.#peers.delete(halfOpen.key);
    return this.#peers.size < MAX_PEERS;
  }

  #transmit(entry: PeerEntry, output: EnetOutput): void {
    for (const datagram of output.datagramsToSend) this.options.send(datagram, entry.remote);
  }

  #finish(entry: PeerEntry, cause: ControlCloseCause): void {
    this.#peers.delete(entry.key);
    const handler = entry.handler;
    entry.handler = null;
    handler?.onClosed(cause);
  }

  #process(entry: PeerEntry, output: EnetOutput): void {
    const { log } = this.options;
    this.#transmit(entry, output);
    for (const event of output.events) {
      if (event.type === "connect") {
        entry.handler = this.options.accept(event.data >>> 0, entry.remote, entry.connection);
        if (entry.handler === null) {
          this.#stats.refusedConnects++;
          log.info("control connection refused", { remote: entry.key });
          entry.peer.disconnect();
          this.#transmit(entry, entry.peer.tick(this.#now));
          this.#peers.delete(entry.key);
          return;
        }
        entry.cipher = new ControlCipher(entry.handler.key, "host");
        log.info("control stream connected", { remote: entry.key });
      } else {
        this.#finish(entry, event.cause);
        return;
      }
    }
    for (const delivery of output.delivered) {
      if (!entry.cipher || !entry.handler) continue;
      let message: { type: number; payload: Uint8Array };
      try {
        message = entry.cipher.open(delivery.payload);
      } catch (error) {
        const code = error instanceof ControlError ? error.code : "malformed";
        const counter = code === "tag"
          ? "forgedMessages"
          : code === "replayed"
          ? "replayedMessages"
          : "malformedMessages";
        const count = ++this.#stats[counter];
        if (isLoggedOccurrence(count)) {
          log.info("control message dropped", { remote: entry.key, reason: code, count });
        }
        continue;
      }
      entry.lastActivityMs = this.#now;
      try {
        entry.handler.onMessage(message.type, message.payload);
      } catch (error) {
        this.#stats.malformedMessages++;
        log.warn("control message handler failed", { error: (error as Error).message });
      }
    }
  }

  #createEntry(key: string, remote: ControlRemote): PeerEntry {
    const entry: PeerEntry = {
      key,
      peer: new EnetHostPeer({ incomingPeerId: (this.options.peerId ?? randomPeerId)() }),
      remote,
      handler: null,
      cipher: null,
      createdMs: this.#now,
      lastActivityMs: this.#now,
      closing: false,
      connection: {
        remote: key,
        get roundTripMs() {
          return entry.peer.stats.roundTripMs;
        },
        send: (type, payload) => {
          if (!entry.cipher || entry.closing) return;
          entry.peer.send(0, entry.cipher.seal(type, payload), true);
          this.#transmit(entry, entry.peer.tick(this.#now));
        },
        close: (finalType, finalPayload) => {
          if (entry.closing) return;
          if (entry.cipher && finalType !== undefined) {
            entry.peer.send(0, entry.cipher.seal(finalType, finalPayload ?? new Uint8Array()), true);
          }
          entry.closing = true;
          // Queued reliable data (the termination) goes out before ENet's DISCONNECT (enet.ts keeps order).
          entry.peer.disconnect();
          this.#transmit(entry, entry.peer.tick(this.#now));
          const handler = entry.handler;
          entry.handler = null;
          handler?.onClosed("local");
        },
      },
    };
    return entry;
  }
}

export interface ControlServerOptions extends ControlPolicy {
  bind: string;
  port: number;
  log: Logger;
  now?: () => number;
}

export interface ControlServer {
  port: number;
  /** Datagrams or messages dropped, all reasons together. */
  readonly dropped: number;
  readonly stats: Readonly<ControlServerStats>;
  close(): void;
}

export function startControlServer(options: ControlServerOptions): ControlServer {
  const now = options.now ?? (() => performance.now());
  const socket = Deno.listenDatagram({ transport: "udp", hostname: options.bind, port: options.port });
  let closed = false;
  const endpoint = new ControlEndpoint({
    admit: options.admit,
    accept: options.accept,
    log: options.log,
    send: (datagram, to) => {
      socket.send(datagram, { transport: "udp", hostname: to.ip, port: to.port })
        .catch(() => {/* the peer's timeout handles a dead path */});
    },
  });

  (async () => {
    try {
      for (;;) {
        const [datagram, addr] = await socket.receive();
        const address = addr as Deno.NetAddr;
        try {
          endpoint.receive(datagram, controlRemote(address.hostname, address.port), now());
        } catch (error) {
          // Nothing a datagram carries may stop the receive loop.
          options.log.error("control datagram handling failed", { error: (error as Error).message });
        }
      }
    } catch (error) {
      if (!closed) options.log.error("control socket failed", { error: (error as Error).message });
    }
  })();

  const timer = setInterval(() => endpoint.tick(now()), SERVICE_INTERVAL_MS);

  return {
    port: (socket.addr as Deno.NetAddr).port,
    get dropped() {
      return endpoint.dropped;
    },
    get stats() {
      return endpoint.stats;
    },
    close: () => {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      endpoint.close();
      try {
        socket.close();
      } catch { /* already closed */ }
    },
  };
}
