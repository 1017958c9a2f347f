/**
 * The host side of GameStream pairing (docs/gamestream-protocol.md §3.2–3.3): one ceremony per client
 * `uniqueid`, phases strictly in order, phase 1 held until the user submits the PIN (through the management
 * API). Pure apart from the injected clock and randomness; every reply is a complete nvhttp XML document and
 * `handle()` never throws.
 *
 * Ceremonies are capped (in total and per source address) and expire, so a LAN peer can neither park
 * unlimited requests nor keep the PIN prompt occupied. Against a stranger on the LAN (docs/architecture.md,
 * "Pairing defences"): every ceremony has an opaque id the operator names the PIN with, later phases count
 * only from the address that began the ceremony, a phase 1 replaces a ceremony only when it is valid and
 * comes from that address, a held phase 1 whose connection closes ends its ceremony at once, and a PIN is
 * delivered to one ceremony only, ever (a second delivery of the same digits is refused).
 */
import { createPrivateKey, randomBytes as nodeRandomBytes, X509Certificate } from "node:crypto";
import { renderError, renderOk } from "../gamestream/nvhttp_xml.ts";
import {
  aesEcbDecrypt,
  aesEcbEncrypt,
  bytesEqual,
  certificateSignature,
  concatBytes,
  fromHex,
  pinKey,
  rsaSign,
  rsaVerify,
  sha256,
  toHex,
} from "./gamestream_crypto.ts";

export interface PairingHostOptions {
  /** The host's GameStream RSA certificate and key (PEM). */
  serverCertPem: string;
  serverKeyPem: string;
  /** Milliseconds; defaults to Date.now. */
  now?: () => number;
  randomBytes?: (n: number) => Uint8Array;
  /** Ceremonies in progress at once, waiting for the PIN or not (default 4). */
  maxPending?: number;
  /** Ceremonies in progress per source address (default 1). */
  maxPendingPerIp?: number;
  /** A phase-1 request waiting longer than this for the PIN fails; so does a ceremony idle this long after it. */
  pendingTtlMs?: number;
  /** A ceremony succeeded: the caller pins and persists the client certificate. */
  onPaired: (client: PairedClient) => void;
}

export interface PairedClient {
  certPem: string;
  deviceName: string;
  uniqueId: string;
}

export interface NvReply {
  /** HTTP status; 200 for every pairing reply, the outcome is in the XML `status_code` (§2.1). */
  status: number;
  /** The full XML document including the prolog. */
  body: string;
}

export interface PairingRequestContext {
  sourceIp: string;
  overHttps: boolean;
  /** The TLS client certificate is a paired one (only meaningful over HTTPS). */
  clientCertPaired: boolean;
  /** Aborted when the request's connection closes before its reply is written; ends a held phase 1. */
  closed?: AbortSignal;
}

/** A ceremony whose phase 1 is held for the PIN, as the operator sees it. */
export interface WaitingCeremony {
  /** Opaque and random; not the client's `uniqueid`. */
  id: string;
  deviceName: string;
  sourceIp: string;
  startedMs: number;
  expiresMs: number;
}

export type SubmitPinResult =
  | { kind: "delivered"; ceremony: WaitingCeremony }
  | { kind: "invalid-pin" }
  | { kind: "no-handshake" }
  /** More than one ceremony waits and none was named. */
  | { kind: "ambiguous"; waiting: WaitingCeremony[] }
  /** The named id was never issued (or is long forgotten). */
  | { kind: "unknown-ceremony" }
  /** The named ceremony no longer waits, or the PIN was already delivered once; `reason` says which. */
  | { kind: "refused"; reason: string };

/** Refusals of requests that a stranger could use against someone else's ceremony, for logs and tests. */
export interface PairingRefusals {
  /** A phase 2–4 for a ceremony begun from another address. */
  foreignAddress: number;
  /** A phase 1 for a uniqueid whose ceremony was begun from another address. */
  supersedeRefused: number;
  /** Held phase-1 requests whose connection closed. */
  closedWhileWaiting: number;
  /** PINs refused because the same digits were already delivered to a ceremony. */
  burnedPin: number;
}

export const DEFAULT_MAX_PENDING = 4;
export const DEFAULT_MAX_PENDING_PER_IP = 1;
/** Two minutes to read the PIN off the client and type it on the host. */
export const DEFAULT_PENDING_TTL_MS = 120_000;

/** Phases 2–4 are recognised by their parameter (§3.2), in protocol order. */
const LATER_PHASES = ["clientchallenge", "serverchallengeresp", "clientpairingsecret"] as const;
type LaterPhase = typeof LATER_PHASES[number];

/** Sunshine reads the first 32 hex digits (16 bytes) of `salt` (§3.2 phase 1). */
const SALT_HEX_DIGITS = 32;
/** Client challenge, server challenge and the two secrets are 16 bytes each (§3.2). */
const NONCE_BYTES = 16;
const AES_BLOCK_BYTES = 16;
/** An RSA-2048 certificate in PEM is about 1.1 KiB; anything past 16 KiB is not a client certificate. */
const MAX_CLIENT_CERT_BYTES = 16 * 1024;
/** The device name is only shown in lists; MQT always sends "roth". */
const MAX_DEVICE_NAME_CHARS = 64;
/** 96 random bits: a ceremony id can be neither guessed nor collide. */
const CEREMONY_ID_BYTES = 12;
/** Seed 000 accepts 1–16 digits; the PIN key is SHA-256 over the digit string, so any length works. */
const PIN_PATTERN = /^[0-9]{1,16}$/;
/**
 * A PIN once delivered stays refused this long: re-typing the same digits after a failed attempt happens
 * within minutes (Moonlight shows a fresh PIN for each attempt), and an hour covers that with a wide margin.
 */
const BURNED_PIN_RETENTION_MS = 3_600_000;
/**
 * At most this many burned PINs are remembered (oldest forgotten first). Each entry needs an operator's PIN
 * entry, and 64 of the 10,000 four-digit PINs keeps a fresh PIN's chance of a false refusal under 0.7 %.
 */
const MAX_BURNED_PINS = 64;
/** Ended ceremonies remembered for a clear answer to a PIN that names one: a few minutes of churn. */
const MAX_ENDED_CEREMONIES = 32;

interface Ceremony {
  readonly id: string;
  readonly uniqueId: string;
  readonly sourceIp: string;
  readonly startedMs: number;
  readonly deviceName: string;
  readonly clientCertPem: string;
  readonly salt: Uint8Array;
  /** What the next request must be; "pin" while phase 1 is held for the PIN. */
  expecting: "pin" | LaterPhase;
  deadlineMs: number;
  key: Uint8Array | null;
  serverSecret: Uint8Array | null;
  serverChallenge: Uint8Array | null;
  clientHash: Uint8Array | null;
  /** Resolves the held phase-1 request; null once answered. */
  settle: ((reply: NvReply) => void) | null;
  /** Detaches the connection-close listener of the held phase 1. */
  detach: () => void;
}

function pairedReply(paired: 0 | 1, extra = ""): NvReply {
  return { status: 200, body: renderOk(`<paired>${paired}</paired>${extra}`) };
}

function failure(statusCode: number, message: string): NvReply {
  return { status: 200, body: renderError(statusCode, message, { body: "<paired>0</paired>" }) };
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  return value;
}

export class GameStreamPairing {
  readonly #serverKeyPem: string;
  readonly #serverSignature: Uint8Array;
  readonly #plainCertHex: string;
  readonly #now: () => number;
  readonly #randomBytes: (n: number) => Uint8Array;
  readonly #maxPending: number;
  readonly #maxPendingPerIp: number;
  readonly #ttlMs: number;
  readonly #onPaired: (client: PairedClient) => void;
  /** Keyed by uniqueid; insertion order is arrival order, so waiting entries list oldest first. */
  readonly #ceremonies = new Map<string, Ceremony>();
  /** Ceremony id → why it ended (bounded, oldest forgotten). */
  readonly #ended = new Map<string, string>();
  /** PIN → when it was delivered (bounded, oldest forgotten). */
  readonly #burnedPins = new Map<string, number>();
  readonly #refusals: PairingRefusals = {
    foreignAddress: 0,
    supersedeRefused: 0,
    closedWhileWaiting: 0,
    burnedPin: 0,
  };
  #closed = false;

  constructor(options: PairingHostOptions) {
    const cert = new X509Certificate(options.serverCertPem);
    if (!cert.checkPrivateKey(createPrivateKey(options.serverKeyPem))) {
      throw new Error("serverKeyPem does not belong to serverCertPem");
    }
    this.#serverKeyPem = options.serverKeyPem;
    this.#serverSignature = certificateSignature(options.serverCertPem);
    this.#plainCertHex = toHex(new TextEncoder().encode(options.serverCertPem));
    this.#now = options.now ?? Date.now;
    this.#randomBytes = options.randomBytes ?? ((n) => new Uint8Array(nodeRandomBytes(n)));
    this.#maxPending = positiveInteger("maxPending", options.maxPending ?? DEFAULT_MAX_PENDING);
    this.#maxPendingPerIp = positiveInteger(
      "maxPendingPerIp",
      options.maxPendingPerIp ?? DEFAULT_MAX_PENDING_PER_IP,
    );
    this.#ttlMs = positiveInteger("pendingTtlMs", options.pendingTtlMs ?? DEFAULT_PENDING_TTL_MS);
    this.#onPaired = options.onPaired;
  }

  /** Handles `GET /pair` with its parsed query. Phase 1 stays pending until the PIN, expiry, a closed connection or close(). */
  handle(query: ReadonlyMap<string, string>, ctx: PairingRequestContext): Promise<NvReply> {
    try {
      return Promise.resolve(this.#route(query, ctx));
    } catch {
      return Promise.resolve(failure(400, "Malformed pairing request"));
    }
  }

  pinPending(): boolean {
    return this.waitingCeremonies().length > 0;
  }

  /** Ceremonies held for the PIN, oldest first. */
  waitingCeremonies(): WaitingCeremony[] {
    this.tick();
    return [...this.#ceremonies.values()].filter((c) => c.expecting === "pin").map(describe);
  }

  /**
   * Ends a ceremony on the operator's word (`DELETE /api/v1/pair/{id}`): a stranger's ceremony holding one of
   * the slots is cleared without waiting for its TTL. Its held request gets a failure. False when no ceremony
   * in progress has that id.
   */
  cancelCeremony(ceremonyId: string): boolean {
    const ceremony = [...this.#ceremonies.values()].find((c) => c.id === ceremonyId);
    if (!ceremony) return false;
    this.#drop(ceremony, failure(400, "Pairing cancelled by the host"), "cancelled by the operator");
    return true;
  }

  /** Counters of refused stranger requests since start. */
  refusals(): Readonly<PairingRefusals> {
    return { ...this.#refusals };
  }

  /**
   * Delivers the PIN (1–16 ASCII digits) to the ceremony `ceremonyId`, or to the only waiting one when none is
   * named. The same digits are never delivered twice: whoever saw the transcript of one delivery could
   * recover a short PIN offline and complete a second ceremony with it.
   */
  submitPin(pin: string, ceremonyId?: string): SubmitPinResult {
    if (!PIN_PATTERN.test(pin)) return { kind: "invalid-pin" };
    this.tick();
    let ceremony: Ceremony | undefined;
    if (ceremonyId === undefined) {
      const waiting = [...this.#ceremonies.values()].filter((c) => c.expecting === "pin");
      if (waiting.length === 0) return { kind: "no-handshake" };
      if (waiting.length > 1) return { kind: "ambiguous", waiting: waiting.map(describe) };
      ceremony = waiting[0];
    } else {
      ceremony = [...this.#ceremonies.values()].find((c) => c.id === ceremonyId);
      if (!ceremony) {
        const ended = this.#ended.get(ceremonyId);
        if (ended === undefined) return { kind: "unknown-ceremony" };
        return { kind: "refused", reason: `pairing ceremony ${ceremonyId} has ended: ${ended}` };
      }
      if (ceremony.expecting !== "pin") {
        return {
          kind: "refused",
          reason: `pairing ceremony ${ceremonyId} already received a PIN; start pairing again on the client`,
        };
      }
    }
    const now = this.#now();
    this.#forgetBurnedPins(now);
    if (this.#burnedPins.has(pin)) {
      this.#refusals.burnedPin++;
      return {
        kind: "refused",
        reason: "this PIN was already delivered to a pairing ceremony and cannot be used again; " +
          "start pairing again on the client to get a new PIN",
      };
    }
    this.#burnedPins.set(pin, now);
    if (this.#burnedPins.size > MAX_BURNED_PINS) {
      this.#burnedPins.delete(this.#burnedPins.keys().next().value!);
    }
    ceremony.key = pinKey(ceremony.salt, pin);
    ceremony.expecting = "clientchallenge";
    ceremony.deadlineMs = now + this.#ttlMs;
    ceremony.detach();
    const delivered = describe(ceremony);
    this.#settle(ceremony, pairedReply(1, `<plaincert>${this.#plainCertHex}</plaincert>`));
    return { kind: "delivered", ceremony: delivered };
  }

  /** Expires ceremonies past their deadline; call periodically (the host does every second). */
  tick(): void {
    const now = this.#now();
    for (const ceremony of [...this.#ceremonies.values()]) {
      if (now <= ceremony.deadlineMs) continue;
      this.#drop(
        ceremony,
        ceremony.expecting === "pin"
          ? failure(408, "The PIN was not entered in time")
          : failure(408, "Pairing timed out"),
        "it timed out",
      );
    }
  }

  /** Fails every ceremony and refuses new ones. */
  close(): void {
    this.#closed = true;
    for (const ceremony of [...this.#ceremonies.values()]) {
      this.#drop(ceremony, failure(503, "The host is shutting down"), "the host is shutting down");
    }
  }

  #route(query: ReadonlyMap<string, string>, ctx: PairingRequestContext): NvReply | Promise<NvReply> {
    this.tick();
    const uniqueId = query.get("uniqueid");
    if (uniqueId === undefined || uniqueId === "") return failure(400, "Missing uniqueid parameter");
    const phrase = query.get("phrase");
    if (phrase === "pairchallenge") {
      // Phase 5 proves the pinned mutual TLS works, so it only succeeds over it.
      return pairedReply(ctx.overHttps && ctx.clientCertPaired ? 1 : 0);
    }
    if (phrase === "getservercert") return this.#getServerCert(uniqueId, query, ctx);
    const phase = LATER_PHASES.find((name) => query.has(name));
    if (phase === undefined) return failure(404, "Invalid pairing request");
    const ceremony = this.#ceremonies.get(uniqueId);
    if (!ceremony) return failure(400, "Invalid uniqueid");
    if (ceremony.sourceIp !== ctx.sourceIp) {
      // A stranger who learnt the uniqueid must neither advance nor destroy the ceremony; the answer is
      // the one for an unknown uniqueid, so it does not even learn that one exists.
      this.#refusals.foreignAddress++;
      return failure(400, "Invalid uniqueid");
    }
    if (ceremony.expecting !== phase) {
      return this.#drop(ceremony, failure(400, `Out of order call to ${phase}`), `an out-of-order ${phase}`);
    }
    const value = fromHex(query.get(phase)!);
    ceremony.deadlineMs = this.#now() + this.#ttlMs;
    switch (phase) {
      case "clientchallenge":
        return this.#clientChallenge(ceremony, value);
      case "serverchallengeresp":
        return this.#serverChallengeResponse(ceremony, value);
      case "clientpairingsecret":
        return this.#clientPairingSecret(ceremony, value);
    }
  }

  #getServerCert(
    uniqueId: string,
    query: ReadonlyMap<string, string>,
    ctx: PairingRequestContext,
  ): NvReply | Promise<NvReply> {
    if (this.#closed) return failure(503, "The host is shutting down");
    const { sourceIp, closed } = ctx;
    if (closed?.aborted) return failure(400, "The connection closed");
    // Validate before touching anything: a malformed phase 1 must not cost an existing ceremony its place.
    const saltHex = query.get("salt") ?? "";
    if (saltHex.length < SALT_HEX_DIGITS) return failure(400, "Salt too short");
    const salt = fromHex(saltHex.slice(0, SALT_HEX_DIGITS));
    if (!salt) return failure(400, "Salt is not hex");
    const clientCertPem = parseClientCert(query.get("clientcert") ?? "");
    if (clientCertPem === null) return failure(400, "Invalid client certificate");
    const existing = this.#ceremonies.get(uniqueId);
    if (existing && existing.sourceIp !== sourceIp) {
      this.#refusals.supersedeRefused++;
      return failure(409, "A pairing request for this client is in progress from another address");
    }
    // A user who abandoned a ceremony simply starts again from the same device, so a valid phase 1 from the
    // ceremony's own address replaces it instead of failing.
    if (existing) this.#drop(existing, failure(400, "Superseded by a new pairing request"), "superseded");
    const fromSameIp = [...this.#ceremonies.values()].filter((c) => c.sourceIp === sourceIp);
    if (fromSameIp.length >= this.#maxPendingPerIp) {
      // A ceremony past the PIN whose client went quiet was abandoned (Moonlight stops at phase 3 after a
      // wrong PIN, and its plain-HTTP /unpair ends nothing): a new phase 1 from the same address, which could
      // end it with an out-of-order call anyway, takes its place. One still waiting for the PIN stays.
      const abandoned = fromSameIp.find((c) => c.expecting !== "pin");
      if (!abandoned) return failure(503, "A pairing request from this address is already in progress");
      this.#drop(
        abandoned,
        failure(400, "Superseded by a new pairing request"),
        "superseded by a new pairing request from its address",
      );
    }
    if (this.#ceremonies.size >= this.#maxPending) {
      return failure(503, "Too many pairing requests in progress; try again later");
    }
    const id = toHex(this.#randomBytes(CEREMONY_ID_BYTES)).toLowerCase();
    if (id.length !== CEREMONY_ID_BYTES * 2) throw new RangeError("randomBytes returned the wrong length");
    const now = this.#now();
    return new Promise<NvReply>((resolve) => {
      const ceremony: Ceremony = {
        id,
        uniqueId,
        sourceIp,
        startedMs: now,
        deviceName: (query.get("devicename") ?? "").slice(0, MAX_DEVICE_NAME_CHARS),
        clientCertPem,
        salt,
        expecting: "pin",
        deadlineMs: now + this.#ttlMs,
        key: null,
        serverSecret: null,
        serverChallenge: null,
        clientHash: null,
        settle: resolve,
        detach: () => {},
      };
      if (closed) {
        // Nobody reads a reply on a closed connection, and the ceremony would take a PIN for nobody.
        const onClose = () => {
          if (ceremony.expecting !== "pin") return;
          this.#refusals.closedWhileWaiting++;
          this.#drop(ceremony, failure(400, "The connection closed"), "its client disconnected");
        };
        closed.addEventListener("abort", onClose, { once: true });
        ceremony.detach = () => closed.removeEventListener("abort", onClose);
      }
      this.#ceremonies.set(uniqueId, ceremony);
    });
  }

  /** Phase 2: decrypt cc, answer E_K(H(cc ‖ sig(S_cert) ‖ ss) ‖ sc). */
  #clientChallenge(ceremony: Ceremony, encrypted: Uint8Array | null): NvReply {
    if (!isWholeBlocks(encrypted)) {
      return this.#drop(ceremony, failure(400, "Invalid client challenge"), "an invalid client challenge");
    }
    const key = ceremony.key!;
    const clientChallenge = aesEcbDecrypt(key, encrypted).subarray(0, NONCE_BYTES);
    const serverSecret = this.#nonce();
    const serverChallenge = this.#nonce();
    ceremony.serverSecret = serverSecret;
    ceremony.serverChallenge = serverChallenge;
    ceremony.expecting = "serverchallengeresp";
    const hash = sha256(clientChallenge, this.#serverSignature, serverSecret);
    const response = aesEcbEncrypt(key, concatBytes(hash, serverChallenge));
    return pairedReply(1, `<challengeresponse>${toHex(response)}</challengeresponse>`);
  }

  /** Phase 3: keep D_K(hc) for phase 4, answer ss ‖ sign(S_priv, ss). */
  #serverChallengeResponse(ceremony: Ceremony, encrypted: Uint8Array | null): NvReply {
    if (!isWholeBlocks(encrypted)) {
      return this.#drop(
        ceremony,
        failure(400, "Invalid server challenge response"),
        "an invalid server challenge response",
      );
    }
    ceremony.clientHash = aesEcbDecrypt(ceremony.key!, encrypted);
    ceremony.expecting = "clientpairingsecret";
    const serverSecret = ceremony.serverSecret!;
    const secret = concatBytes(serverSecret, rsaSign(this.#serverKeyPem, serverSecret));
    return pairedReply(1, `<pairingsecret>${toHex(secret)}</pairingsecret>`);
  }

  /** Phase 4: the PIN matched iff H(sc ‖ sig(C_cert) ‖ cs) equals hc, and cs must carry C_priv's signature. */
  #clientPairingSecret(ceremony: Ceremony, secret: Uint8Array | null): NvReply {
    if (secret === null) {
      return this.#drop(
        ceremony,
        failure(400, "Client pairing secret is not hex"),
        "an invalid pairing secret",
      );
    }
    if (secret.length <= NONCE_BYTES) {
      return this.#drop(
        ceremony,
        failure(400, "Client pairing secret too short"),
        "an invalid pairing secret",
      );
    }
    const clientSecret = secret.subarray(0, NONCE_BYTES);
    const signature = secret.subarray(NONCE_BYTES);
    const expected = sha256(
      ceremony.serverChallenge!,
      certificateSignature(ceremony.clientCertPem),
      clientSecret,
    );
    const pinMatched = bytesEqual(expected, ceremony.clientHash!);
    const signed = rsaVerify(ceremony.clientCertPem, clientSecret, signature);
    if (!pinMatched || !signed) {
      return this.#drop(ceremony, pairedReply(0), pinMatched ? "a bad client signature" : "a wrong PIN");
    }
    this.#drop(ceremony, pairedReply(1), "it completed");
    try {
      this.#onPaired({
        certPem: ceremony.clientCertPem,
        deviceName: ceremony.deviceName,
        uniqueId: ceremony.uniqueId,
      });
    } catch {
      return failure(500, "The paired client could not be stored");
    }
    return pairedReply(1);
  }

  #nonce(): Uint8Array {
    const bytes = this.#randomBytes(NONCE_BYTES);
    if (bytes.length !== NONCE_BYTES) throw new RangeError("randomBytes returned the wrong length");
    return bytes;
  }

  #forgetBurnedPins(now: number): void {
    for (const [pin, burnedMs] of this.#burnedPins) {
      if (now - burnedMs <= BURNED_PIN_RETENTION_MS) break;
      this.#burnedPins.delete(pin);
    }
  }

  #settle(ceremony: Ceremony, reply: NvReply): void {
    const settle = ceremony.settle;
    ceremony.settle = null;
    settle?.(reply);
  }

  /** Destroys the ceremony ("force a re-pair"); a held phase 1 gets `reply` too. Returns `reply`. */
  #drop(ceremony: Ceremony, reply: NvReply, why: string): NvReply {
    if (this.#ceremonies.get(ceremony.uniqueId) === ceremony) {
      this.#ceremonies.delete(ceremony.uniqueId);
      this.#ended.set(ceremony.id, why);
      if (this.#ended.size > MAX_ENDED_CEREMONIES) this.#ended.delete(this.#ended.keys().next().value!);
    }
    ceremony.detach();
    this.#settle(ceremony, reply);
    return reply;
  }
}

function describe(ceremony: Ceremony): WaitingCeremony {
  return {
    id: ceremony.id,
    deviceName: ceremony.deviceName,
    sourceIp: ceremony.sourceIp,
    startedMs: ceremony.startedMs,
    expiresMs: ceremony.deadlineMs,
  };
}

function isWholeBlocks(bytes: Uint8Array | null): bytes is Uint8Array {
  return bytes !== null && bytes.length >= AES_BLOCK_BYTES && bytes.length % AES_BLOCK_BYTES === 0;
}

/** The hex-encoded PEM of phase 1, or null when it is not a certificate with a signature we can read. */
function parseClientCert(hex: string): string | null {
  const bytes = fromHex(hex);
  if (bytes === null || bytes.length === 0 || bytes.length > MAX_CLIENT_CERT_BYTES) return null;
  try {
    const pem = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    certificateSignature(pem);
    return pem;
  } catch {
    return null;
  }
}
