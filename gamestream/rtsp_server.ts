/**
 * RTSP over TCP (§5.2): one request per connection, the reply, then close (the client reads until EOF).
 * Connections are accepted only while a launch is waiting for its handshake; otherwise they are closed at
 * once, as Sunshine does. The protocol itself is the pure `RtspSession` in rtsp.ts; a launch with `corever` ≥ 1
 * speaks it sealed (rtsp_encryption.ts), one sealed frame each way per connection.
 *
 * Section numbers (§) refer to docs/gamestream-protocol.md.
 */
import { normalizeAddress, RtspParseError, RtspRequestParser, serializeResponse } from "./rtsp.ts";
import type { RtspRequest, RtspSession, RtspSessionAction } from "./rtsp.ts";
import { RtspEncryptionError, sealedFrameLength } from "./rtsp_encryption.ts";
import type { Logger } from "../host/log.ts";
import { defenceFromEnv, runGuardedAcceptLoop } from "../host/guarded_listener.ts";
import type { ConnectionCounters } from "../host/connection_guard.ts";

/** Moonlight waits 15 s for a reply; a client that has not sent a whole request in 10 s is gone. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Refusals logged one by one per reason before only every thousandth is (a handshake has ~8 requests). */
const LOGGED_REFUSALS_PER_REASON = 50;

export interface RtspServerOptions {
  bind: string;
  port: number;
  /** The handshake of the pending launch, or null when none (the connection is then closed). */
  session(): RtspSession | null;
  onActions(actions: RtspSessionAction[], session: RtspSession): void;
  log: Logger;
}

export interface RtspServer {
  port: number;
  /** Requests refused so far, by reason ("stranger", "stream_limits", "malformed", "authentication_failed" …). */
  refusals(): Record<string, number>;
  /** Admission and timeout counters of the listener (refused, evicted, timed out, accept errors). */
  connectionCounters(): ConnectionCounters;
  close(): void;
}

async function readRequest(conn: Deno.Conn, parser: RtspRequestParser) {
  const buffer = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) return null;
    const { requests, error } = parser.feed(buffer.subarray(0, n));
    if (error) throw error;
    if (requests.length > 0) return requests[0];
  }
}

/** Reads one sealed frame (its length word says how much); more bytes than the frame are an error. */
async function readSealedFrame(conn: Deno.Conn): Promise<Uint8Array | null> {
  const buffer = new Uint8Array(4096);
  let received = new Uint8Array(0);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) return null;
    const joined = new Uint8Array(received.length + n);
    joined.set(received);
    joined.set(buffer.subarray(0, n), received.length);
    received = joined;
    const total = sealedFrameLength(received); // throws on plain text or an absurd length
    if (total !== null && received.length > total) {
      throw new RtspEncryptionError("trailing_bytes", `${received.length - total} bytes after the frame`);
    }
    if (total !== null && received.length === total) return received;
  }
}

const BAD_REQUEST = serializeResponse({ status: 400, reason: "Bad Request", cseq: null });
const FORBIDDEN = serializeResponse({ status: 403, reason: "Forbidden", cseq: null });

/** The single request inside an opened frame; anything else (none, two, a parse error) is null. */
function onlyRequest(plaintext: Uint8Array): RtspRequest | null {
  const parser = new RtspRequestParser();
  const { requests, error } = parser.feed(plaintext);
  return error === null && requests.length === 1 && parser.bufferedBytes === 0 ? requests[0] : null;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) written += await conn.write(bytes.subarray(written));
}

type Refuse = (reason: string, peer: string, detail: string) => void;

/**
 * One request, one reply. A stranger (any address but the launching client's) is refused before anything it
 * sent is decrypted or interpreted, and its reply is a bare status: no secret, no state change.
 */
async function serveConnection(conn: Deno.Conn, options: RtspServerOptions, refuse: Refuse): Promise<void> {
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch { /* already closed */ }
  }, REQUEST_TIMEOUT_MS);
  const peer = normalizeAddress((conn.remoteAddr as Deno.NetAddr).hostname);
  try {
    const session = options.session();
    if (session === null) return;
    const cipher = session.cipher;
    let request: RtspRequest | null;
    if (cipher === null) {
      request = await readRequest(conn, new RtspRequestParser());
      if (request === null) return;
    } else {
      const frame = await readSealedFrame(conn);
      if (frame === null) return;
      if (!session.isOwner(peer)) {
        refuse("stranger", peer, "sealed request");
        await writeAll(conn, FORBIDDEN);
        return;
      }
      request = onlyRequest(cipher.openRequest(frame));
      if (request === null) {
        refuse("malformed", peer, "the sealed message is not one RTSP request");
        await writeAll(conn, cipher.sealReply(BAD_REQUEST));
        return;
      }
    }
    const result = session.handle(request, peer);
    if (result.refusal) refuse(result.refusal.reason, peer, result.refusal.detail);
    options.log.debug("rtsp", {
      method: request.method,
      uri: request.uri,
      status: result.response.status,
      encrypted: cipher !== null,
    });
    const reply = serializeResponse(result.response);
    await writeAll(conn, cipher === null ? reply : cipher.sealReply(reply));
    if (result.actions.length > 0) options.onActions(result.actions, session);
  } catch (error) {
    if (error instanceof RtspEncryptionError || error instanceof RtspParseError) {
      refuse(error instanceof RtspEncryptionError ? error.code : "malformed", peer, error.message);
      try {
        await writeAll(conn, BAD_REQUEST);
      } catch { /* the peer is gone */ }
    } else {
      options.log.debug("rtsp connection dropped", { error: (error as Error).message });
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

export function startRtspServer(options: RtspServerOptions): RtspServer {
  const listener = Deno.listen({ hostname: options.bind, port: options.port, transport: "tcp" });
  const refusals = new Map<string, number>();
  const refuse: Refuse = (reason, peer, detail) => {
    const count = (refusals.get(reason) ?? 0) + 1;
    refusals.set(reason, count);
    // Every refusal is counted; the log gets the first ones of each reason and then every thousandth, so a
    // flood cannot flood the log.
    if (count <= LOGGED_REFUSALS_PER_REASON || count % 1000 === 0) {
      options.log.warn("rtsp request refused", { reason, remote: peer, detail, count });
    }
  };
  // Caps, a whole-connection deadline and accept errors that never end the loop (host/guarded_listener.ts).
  const guard = runGuardedAcceptLoop(listener, {
    name: "rtsp",
    defence: defenceFromEnv("rtsp"),
    log: options.log,
    serve: (conn) => serveConnection(conn, options, refuse),
    // The owner's handshake connections are never evicted for strangers' (who are answered 403 anyway).
    protect: (source) => options.session()?.isOwner(source) ?? false,
  });
  return {
    port: (listener.addr as Deno.NetAddr).port,
    refusals: () => Object.fromEntries(refusals),
    connectionCounters: () => ({ ...guard.counters }),
    close: () => {
      try {
        listener.close();
      } catch { /* already closed */ }
    },
  };
}
