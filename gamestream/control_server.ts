/**
 * The control stream's socket (§6): one UDP port, one ENet peer per client address, AES-GCM envelopes
 * opened and sealed here, messages handed to the session that accepted the connection.
 *
 * Why ENet in TypeScript (enet.ts) rather than Debian's libenet through the native core: control traffic is
 * tens of messages per second, far from the per-packet path the native core exists for; our own peer is
 * dual-stack, survives a client's address change and times its own retransmits (stock libenet 1.3.17 does
 * none of these, §14); and it keeps the control plane's parsing fuzzable in the same language as the rest.
 */
import { EnetHostPeer } from "./enet.ts";
import type { EnetOutput } from "./enet.ts";
import { ControlCipher } from "./control.ts";
import type { Logger } from "../host/log.ts";

/** ENet retransmits and pings are only as prompt as the service loop (§14: ≤ 10 ms). */
const SERVICE_INTERVAL_MS = 10;
/** Sunshine's ping_timeout: a session whose client sends nothing for 10 s is over. */
export const CONTROL_IDLE_TIMEOUT_MS = 10_000;
/** Peers that never complete a session are dropped after this long (stray datagrams, scans). */
const UNBOUND_PEER_TTL_MS = 15_000;
/** Addresses tracked at once; Sunshine allows 128 peers. */
const MAX_PEERS = 128;

export interface ControlSessionHandler {
  key: Uint8Array;
  onMessage(type: number, payload: Uint8Array): void;
  onClosed(cause: "peer" | "timeout" | "local" | "crypto"): void;
}

export interface ControlConnection {
  readonly remote: string;
  send(type: number, payload: Uint8Array): void;
  /** Sends `payload` reliably, then disconnects once it is acknowledged (or the peer is gone). */
  close(finalType?: number, finalPayload?: Uint8Array): void;
}

export interface ControlServerOptions {
  bind: string;
  port: number;
  /** A connecting peer with ENet connect data; return a handler to bind it, null to refuse. */
  accept(connectData: number, remote: string, connection: ControlConnection): ControlSessionHandler | null;
  log: Logger;
  now?: () => number;
}

export interface ControlServer {
  port: number;
  /** Datagrams or messages dropped as malformed or unauthenticated. */
  readonly dropped: number;
  close(): void;
}

interface PeerEntry {
  peer: EnetHostPeer;
  address: Deno.NetAddr;
  handler: ControlSessionHandler | null;
  cipher: ControlCipher | null;
  connection: ControlConnection;
  createdMs: number;
  lastActivityMs: number;
  closing: boolean;
}

export function startControlServer(options: ControlServerOptions): ControlServer {
  const now = options.now ?? (() => performance.now());
  const socket = Deno.listenDatagram({ transport: "udp", hostname: options.bind, port: options.port });
  const peers = new Map<string, PeerEntry>();
  let dropped = 0;
  let closed = false;

  const transmit = (entry: PeerEntry, output: EnetOutput) => {
    for (const datagram of output.datagramsToSend) {
      socket.send(datagram, entry.address).catch(() => {/* the peer's timeout handles a dead path */});
    }
  };

  const finish = (key: string, entry: PeerEntry, cause: Parameters<ControlSessionHandler["onClosed"]>[0]) => {
    peers.delete(key);
    const handler = entry.handler;
    entry.handler = null;
    if (handler) handler.onClosed(cause);
  };

  const process = (key: string, entry: PeerEntry, output: EnetOutput) => {
    transmit(entry, output);
    for (const event of output.events) {
      if (event.type === "connect") {
        entry.handler = options.accept(event.data >>> 0, key, entry.connection);
        if (entry.handler === null) {
          options.log.info("control connection refused", { remote: key, connect_data: event.data >>> 0 });
          entry.peer.disconnect();
          transmit(entry, entry.peer.tick(now()));
          peers.delete(key);
          return;
        }
        entry.cipher = new ControlCipher(entry.handler.key, "host");
        options.log.info("control stream connected", { remote: key });
      } else {
        finish(key, entry, event.cause === "timeout" ? "timeout" : event.cause === "peer" ? "peer" : "local");
        return;
      }
    }
    for (const delivery of output.delivered) {
      if (!entry.cipher || !entry.handler) continue;
      let message: { type: number; payload: Uint8Array };
      try {
        message = entry.cipher.open(delivery.payload);
      } catch (error) {
        // Sunshine stops the session on any tag failure (§6.2): a forged or corrupted envelope ends it.
        dropped++;
        options.log.warn("control message rejected", { remote: key, error: (error as Error).message });
        entry.peer.disconnect();
        transmit(entry, entry.peer.tick(now()));
        finish(key, entry, "crypto");
        return;
      }
      entry.lastActivityMs = now();
      try {
        entry.handler.onMessage(message.type, message.payload);
      } catch (error) {
        dropped++;
        options.log.warn("control message handler failed", { error: (error as Error).message });
      }
    }
  };

  const createEntry = (key: string, address: Deno.NetAddr): PeerEntry => {
    const entry: PeerEntry = {
      peer: new EnetHostPeer(),
      address,
      handler: null,
      cipher: null,
      createdMs: now(),
      lastActivityMs: now(),
      closing: false,
      connection: {
        remote: key,
        send: (type, payload) => {
          if (!entry.cipher || entry.closing) return;
          entry.peer.send(0, entry.cipher.seal(type, payload), true);
          transmit(entry, entry.peer.tick(now()));
        },
        close: (finalType, finalPayload) => {
          if (entry.closing) return;
          if (entry.cipher && finalType !== undefined) {
            entry.peer.send(0, entry.cipher.seal(finalType, finalPayload ?? new Uint8Array()), true);
          }
          entry.closing = true;
          // Queued reliable data (the termination) goes out before ENet's DISCONNECT (enet.ts keeps order).
          entry.peer.disconnect();
          transmit(entry, entry.peer.tick(now()));
          const handler = entry.handler;
          entry.handler = null;
          handler?.onClosed("local");
        },
      },
    };
    return entry;
  };

  (async () => {
    try {
      for (;;) {
        const [datagram, addr] = await socket.receive();
        const address = addr as Deno.NetAddr;
        const key = `${address.hostname}:${address.port}`;
        let entry = peers.get(key);
        if (!entry) {
          if (peers.size >= MAX_PEERS) {
            dropped++;
            continue;
          }
          entry = createEntry(key, address);
          peers.set(key, entry);
        }
        process(key, entry, entry.peer.receive(datagram, now()));
      }
    } catch (error) {
      if (!closed) options.log.error("control socket failed", { error: (error as Error).message });
    }
  })();

  const timer = setInterval(() => {
    const t = now();
    for (const [key, entry] of peers) {
      process(key, entry, entry.peer.tick(t));
      if (!peers.has(key)) continue;
      const state = entry.peer.state;
      if (state === "disconnected") {
        finish(key, entry, "local");
      } else if (entry.handler && t - entry.lastActivityMs > CONTROL_IDLE_TIMEOUT_MS) {
        options.log.info("control stream idle, ending session", { remote: key });
        entry.connection.close();
        peers.delete(key);
      } else if (!entry.handler && !entry.closing && t - entry.createdMs > UNBOUND_PEER_TTL_MS) {
        peers.delete(key);
      }
    }
  }, SERVICE_INTERVAL_MS);

  return {
    port: (socket.addr as Deno.NetAddr).port,
    get dropped() {
      return dropped;
    },
    close: () => {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      for (const [key, entry] of peers) finish(key, entry, "local");
      try {
        socket.close();
      } catch { /* already closed */ }
    },
  };
}
