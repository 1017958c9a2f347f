/**
 * The host side of GameStream pairing (gamestream.md §3.2–3.3): one ceremony per client `uniqueid`, phases
 * strictly in order, phase 1 held until the user submits the PIN (through the management API). Pure apart
 * from the injected clock and randomness; every reply is a complete nvhttp XML document and `handle()`
 * never throws.
 *
 * Ceremonies are capped (in total and per source address) and expire, so a LAN peer can neither park
 * unlimited requests nor keep the PIN prompt occupied.
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
}

export type SubmitPinResult = "delivered" | "no-handshake" | "invalid-pin";

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

interface Ceremony {
  readonly uniqueId: string;
  readonly sourceIp: string;
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
  /** Insertion order is arrival order, so the first waiting entry is the oldest. */
  readonly #ceremonies = new Map<string, Ceremony>();
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

  /** Handles `GET /pair` with its parsed query. Phase 1 stays pending until the PIN, expiry, cancel or close. */
  handle(query: ReadonlyMap<string, string>, ctx: PairingRequestContext): Promise<NvReply> {
    try {
      return Promise.resolve(this.#route(query, ctx));
    } catch {
      return Promise.resolve(failure(400, "Malformed pairing request"));
    }
  }

  pinPending(): boolean {
    this.tick();
    return this.#oldestWaiting() !== undefined;
  }

  /** Delivers the PIN (exactly 4 ASCII digits) to the oldest ceremony waiting for one. */
  submitPin(pin: string): SubmitPinResult {
    if (!/^[0-9]{4}$/.test(pin)) return "invalid-pin";
    this.tick();
    const ceremony = this.#oldestWaiting();
    if (!ceremony) return "no-handshake";
    ceremony.key = pinKey(ceremony.salt, pin);
    ceremony.expecting = "clientchallenge";
    ceremony.deadlineMs = this.#now() + this.#ttlMs;
    this.#settle(ceremony, pairedReply(1, `<plaincert>${this.#plainCertHex}</plaincert>`));
    return "delivered";
  }

  /** Drops the ceremony of this client (`GET /unpair`). */
  cancel(uniqueId: string): void {
    const ceremony = this.#ceremonies.get(uniqueId);
    if (ceremony) this.#drop(ceremony, failure(400, "Pairing cancelled"));
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
      );
    }
  }

  /** Fails every ceremony and refuses new ones. */
  close(): void {
    this.#closed = true;
    for (const ceremony of [...this.#ceremonies.values()]) {
      this.#drop(ceremony, failure(503, "The host is shutting down"));
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
    if (phrase === "getservercert") return this.#getServerCert(uniqueId, query, ctx.sourceIp);
    const phase = LATER_PHASES.find((name) => query.has(name));
    if (phase === undefined) return failure(404, "Invalid pairing request");
    const ceremony = this.#ceremonies.get(uniqueId);
    if (!ceremony) return failure(400, "Invalid uniqueid");
    if (ceremony.expecting !== phase) {
      return this.#drop(ceremony, failure(400, `Out of order call to ${phase}`));
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
    sourceIp: string,
  ): NvReply | Promise<NvReply> {
    if (this.#closed) return failure(503, "The host is shutting down");
    // Moonlight clients all send the same uniqueid and a user who abandoned a ceremony simply starts
    // again, so a new phase 1 replaces the old ceremony instead of failing.
    const existing = this.#ceremonies.get(uniqueId);
    if (existing) this.#drop(existing, failure(400, "Superseded by a new pairing request"));
    if (this.#ceremonies.size >= this.#maxPending) {
      return failure(503, "Too many pairing requests in progress; try again later");
    }
    const fromSameIp = [...this.#ceremonies.values()].filter((c) => c.sourceIp === sourceIp).length;
    if (fromSameIp >= this.#maxPendingPerIp) {
      return failure(503, "A pairing request from this address is already in progress");
    }
    const saltHex = query.get("salt") ?? "";
    if (saltHex.length < SALT_HEX_DIGITS) return failure(400, "Salt too short");
    const salt = fromHex(saltHex.slice(0, SALT_HEX_DIGITS));
    if (!salt) return failure(400, "Salt is not hex");
    const clientCertPem = parseClientCert(query.get("clientcert") ?? "");
    if (clientCertPem === null) return failure(400, "Invalid client certificate");
    return new Promise<NvReply>((resolve) => {
      this.#ceremonies.set(uniqueId, {
        uniqueId,
        sourceIp,
        deviceName: (query.get("devicename") ?? "").slice(0, MAX_DEVICE_NAME_CHARS),
        clientCertPem,
        salt,
        expecting: "pin",
        deadlineMs: this.#now() + this.#ttlMs,
        key: null,
        serverSecret: null,
        serverChallenge: null,
        clientHash: null,
        settle: resolve,
      });
    });
  }

  /** Phase 2: decrypt cc, answer E_K(H(cc ‖ sig(S_cert) ‖ ss) ‖ sc). */
  #clientChallenge(ceremony: Ceremony, encrypted: Uint8Array | null): NvReply {
    if (!isWholeBlocks(encrypted)) return this.#drop(ceremony, failure(400, "Invalid client challenge"));
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
      return this.#drop(ceremony, failure(400, "Invalid server challenge response"));
    }
    ceremony.clientHash = aesEcbDecrypt(ceremony.key!, encrypted);
    ceremony.expecting = "clientpairingsecret";
    const serverSecret = ceremony.serverSecret!;
    const secret = concatBytes(serverSecret, rsaSign(this.#serverKeyPem, serverSecret));
    return pairedReply(1, `<pairingsecret>${toHex(secret)}</pairingsecret>`);
  }

  /** Phase 4: the PIN matched iff H(sc ‖ sig(C_cert) ‖ cs) equals hc, and cs must carry C_priv's signature. */
  #clientPairingSecret(ceremony: Ceremony, secret: Uint8Array | null): NvReply {
    this.#ceremonies.delete(ceremony.uniqueId);
    if (secret === null) return failure(400, "Client pairing secret is not hex");
    if (secret.length <= NONCE_BYTES) return failure(400, "Client pairing secret too short");
    const clientSecret = secret.subarray(0, NONCE_BYTES);
    const signature = secret.subarray(NONCE_BYTES);
    const expected = sha256(
      ceremony.serverChallenge!,
      certificateSignature(ceremony.clientCertPem),
      clientSecret,
    );
    const pinMatched = bytesEqual(expected, ceremony.clientHash!);
    const signed = rsaVerify(ceremony.clientCertPem, clientSecret, signature);
    if (!pinMatched || !signed) return pairedReply(0);
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

  #oldestWaiting(): Ceremony | undefined {
    for (const ceremony of this.#ceremonies.values()) if (ceremony.expecting === "pin") return ceremony;
    return undefined;
  }

  #settle(ceremony: Ceremony, reply: NvReply): void {
    const settle = ceremony.settle;
    ceremony.settle = null;
    settle?.(reply);
  }

  /** Destroys the ceremony ("force a re-pair"); a held phase 1 gets `reply` too. Returns `reply`. */
  #drop(ceremony: Ceremony, reply: NvReply): NvReply {
    if (this.#ceremonies.get(ceremony.uniqueId) === ceremony) this.#ceremonies.delete(ceremony.uniqueId);
    this.#settle(ceremony, reply);
    return reply;
  }
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
