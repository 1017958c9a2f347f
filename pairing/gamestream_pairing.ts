/**
 * The host side of GameStream pairing (§3.2–3.3): a ceremony per client `uniqueid`, phases in order,
 * phase 1 held until the user submits the PIN (through the management API). Pure apart from the
 * injected clock and randomness; replies are complete nvhttp XML documents.
 *
 * Waiting ceremonies are capped (in total and per source address) and expire, so a LAN peer cannot
 * park unlimited requests or keep the PIN prompt occupied.
 */
import { randomBytes as nodeRandomBytes } from "node:crypto";
import { renderError, renderOk } from "../gamestream/nvhttp_xml.ts";
import {
  aesEcbDecrypt,
  aesEcbEncrypt,
  bytesEqual,
  certificateSignature,
  fromHex,
  pinKey,
  rsaSign,
  rsaVerify,
  sha256,
  toHex,
} from "./gamestream_crypto.ts";

export interface PairingHostOptions {
  serverCertPem: string;
  serverKeyPem: string;
  now?: () => number;
  randomBytes?: (n: number) => Uint8Array;
  maxPending?: number;
  maxPendingPerIp?: number;
  pendingTtlMs?: number;
  onPaired: (client: { certPem: string; deviceName: string; uniqueId: string }) => void;
}

export interface NvReply {
  status: number;
  body: string;
}

export interface PairingRequestContext {
  sourceIp: string;
  overHttps: boolean;
  clientCertPaired: boolean;
}

type Phase = "waiting_pin" | "got_server_cert" | "client_challenged" | "server_challenge_answered";

interface Ceremony {
  uniqueId: string;
  sourceIp: string;
  deviceName: string;
  clientCertPem: string;
  salt: Uint8Array;
  createdMs: number;
  phase: Phase;
  key: Uint8Array | null;
  serverSecret: Uint8Array | null;
  serverChallenge: Uint8Array | null;
  clientHash: Uint8Array | null;
  settle: ((reply: NvReply) => void) | null;
}

/** Salt digits Sunshine uses (16 bytes). */
const SALT_HEX_DIGITS = 32;
/** A PEM certificate is a few KiB; more is not a certificate. */
const MAX_CLIENT_CERT_BYTES = 16 * 1024;

const paired = (value: 0 | 1, extra = "") => ({
  status: 200,
  body: renderOk(`<paired>${value}</paired>${extra}`),
});
const failure = (statusCode: number, message: string): NvReply => ({
  status: 200,
  body: renderError(statusCode, message, { body: "<paired>0</paired>" }),
});

export class GameStreamPairing {
  readonly #options: Required<Omit<PairingHostOptions, "onPaired">> & Pick<PairingHostOptions, "onPaired">;
  readonly #serverSignature: Uint8Array;
  readonly #ceremonies = new Map<string, Ceremony>();

  constructor(options: PairingHostOptions) {
    this.#options = {
      now: () => Date.now(),
      randomBytes: (n) => new Uint8Array(nodeRandomBytes(n)),
      maxPending: 4,
      maxPendingPerIp: 1,
      pendingTtlMs: 120_000,
      ...options,
    };
    this.#serverSignature = certificateSignature(options.serverCertPem);
  }

  pinPending(): boolean {
    return [...this.#ceremonies.values()].some((c) => c.phase === "waiting_pin");
  }

  submitPin(pin: string): "delivered" | "no-handshake" | "invalid-pin" {
    if (!/^[0-9]{4}$/.test(pin)) return "invalid-pin";
    this.tick();
    const waiting = [...this.#ceremonies.values()].filter((c) => c.phase === "waiting_pin")
      .sort((a, b) => a.createdMs - b.createdMs)[0];
    if (!waiting) return "no-handshake";
    waiting.key = pinKey(waiting.salt, pin);
    waiting.phase = "got_server_cert";
    const settle = waiting.settle;
    waiting.settle = null;
    settle?.(
      paired(1, `<plaincert>${toHex(new TextEncoder().encode(this.#options.serverCertPem))}</plaincert>`),
    );
    return "delivered";
  }

  cancel(uniqueId: string): void {
    const ceremony = this.#ceremonies.get(uniqueId);
    if (ceremony) this.#drop(ceremony, failure(400, "Pairing cancelled"));
  }

  tick(): void {
    const now = this.#options.now();
    for (const ceremony of [...this.#ceremonies.values()]) {
      if (now - ceremony.createdMs > this.#options.pendingTtlMs) {
        this.#drop(ceremony, failure(408, "The PIN was not entered in time"));
      }
    }
  }

  close(): void {
    for (const ceremony of [...this.#ceremonies.values()]) {
      this.#drop(ceremony, failure(503, "The host is shutting down"));
    }
  }

  handle(query: ReadonlyMap<string, string>, context: PairingRequestContext): Promise<NvReply> {
    this.tick();
    const phrase = query.get("phrase");
    if (phrase === "pairchallenge") {
      return Promise.resolve(context.overHttps && context.clientCertPaired ? paired(1) : paired(0));
    }
    const uniqueId = query.get("uniqueid");
    if (uniqueId === undefined || uniqueId === "") {
      return Promise.resolve(failure(400, "Missing uniqueid parameter"));
    }
    if (phrase === "getservercert") return this.#getServerCert(uniqueId, query, context);
    let step: Phase;
    let handler: (ceremony: Ceremony, value: string) => NvReply;
    let value: string | undefined;
    if ((value = query.get("clientchallenge")) !== undefined) {
      [step, handler] = ["got_server_cert", (c, v) => this.#clientChallenge(c, v)];
    } else if ((value = query.get("serverchallengeresp")) !== undefined) {
      [step, handler] = ["client_challenged", (c, v) => this.#serverChallengeResponse(c, v)];
    } else if ((value = query.get("clientpairingsecret")) !== undefined) {
      [step, handler] = ["server_challenge_answered", (c, v) => this.#clientPairingSecret(c, v)];
    } else {
      return Promise.resolve({ status: 404, body: renderError(404, "Invalid pairing request") });
    }
    const ceremony = this.#ceremonies.get(uniqueId);
    if (!ceremony) return Promise.resolve(failure(400, "Invalid uniqueid"));
    if (ceremony.phase !== step) {
      const reply = failure(400, `Out of order call to ${phraseName(step)}`);
      this.#drop(ceremony, reply);
      return Promise.resolve(reply);
    }
    try {
      return Promise.resolve(handler(ceremony, value));
    } catch {
      const reply = failure(400, "Malformed pairing data");
      this.#drop(ceremony, reply);
      return Promise.resolve(reply);
    }
  }

  #getServerCert(uniqueId: string, query: ReadonlyMap<string, string>, context: PairingRequestContext) {
    const saltHex = query.get("salt") ?? "";
    const salt = saltHex.length >= SALT_HEX_DIGITS ? fromHex(saltHex.slice(0, SALT_HEX_DIGITS)) : null;
    if (!salt) return Promise.resolve(failure(400, "Salt too short"));
    const certBytes = fromHex(query.get("clientcert") ?? "");
    if (!certBytes || certBytes.length === 0 || certBytes.length > MAX_CLIENT_CERT_BYTES) {
      return Promise.resolve(failure(400, "Invalid client certificate"));
    }
    const clientCertPem = new TextDecoder().decode(certBytes);
    try {
      certificateSignature(clientCertPem);
    } catch {
      return Promise.resolve(failure(400, "Invalid client certificate"));
    }
    const previous = this.#ceremonies.get(uniqueId);
    if (previous) this.#drop(previous, failure(400, "Superseded by a new pairing request"));
    const waiting = [...this.#ceremonies.values()].filter((c) => c.phase === "waiting_pin");
    if (
      waiting.length >= this.#options.maxPending ||
      waiting.filter((c) => c.sourceIp === context.sourceIp).length >= this.#options.maxPendingPerIp
    ) {
      return Promise.resolve(failure(503, "Too many pairing requests are waiting for a PIN"));
    }
    return new Promise<NvReply>((resolve) => {
      this.#ceremonies.set(uniqueId, {
        uniqueId,
        sourceIp: context.sourceIp,
        deviceName: (query.get("devicename") ?? "").slice(0, 64),
        clientCertPem,
        salt,
        createdMs: this.#options.now(),
        phase: "waiting_pin",
        key: null,
        serverSecret: null,
        serverChallenge: null,
        clientHash: null,
        settle: resolve,
      });
    });
  }

  #decrypt(ceremony: Ceremony, hex: string): Uint8Array {
    const bytes = fromHex(hex);
    if (!bytes || bytes.length === 0 || bytes.length % 16 !== 0 || !ceremony.key) {
      throw new RangeError("bad ciphertext");
    }
    return aesEcbDecrypt(ceremony.key, bytes);
  }

  #clientChallenge(ceremony: Ceremony, hex: string): NvReply {
    const clientChallenge = this.#decrypt(ceremony, hex).subarray(0, 16);
    const random = this.#options.randomBytes;
    ceremony.serverSecret = random(16);
    ceremony.serverChallenge = random(16);
    const hash = sha256(clientChallenge, this.#serverSignature, ceremony.serverSecret);
    const plain = new Uint8Array(48);
    plain.set(hash, 0);
    plain.set(ceremony.serverChallenge, 32);
    ceremony.phase = "client_challenged";
    return paired(1, `<challengeresponse>${toHex(aesEcbEncrypt(ceremony.key!, plain))}</challengeresponse>`);
  }

  #serverChallengeResponse(ceremony: Ceremony, hex: string): NvReply {
    ceremony.clientHash = this.#decrypt(ceremony, hex).slice(0, 32);
    const secret = ceremony.serverSecret!;
    const signature = rsaSign(this.#options.serverKeyPem, secret);
    const pairingSecret = new Uint8Array(secret.length + signature.length);
    pairingSecret.set(secret, 0);
    pairingSecret.set(signature, secret.length);
    ceremony.phase = "server_challenge_answered";
    return paired(1, `<pairingsecret>${toHex(pairingSecret)}</pairingsecret>`);
  }

  #clientPairingSecret(ceremony: Ceremony, hex: string): NvReply {
    this.#ceremonies.delete(ceremony.uniqueId);
    const bytes = fromHex(hex);
    if (!bytes || bytes.length <= 16) return failure(400, "Client pairing secret too short");
    const clientSecret = bytes.subarray(0, 16);
    const signature = bytes.subarray(16);
    const expected = sha256(
      ceremony.serverChallenge!,
      certificateSignature(ceremony.clientCertPem),
      clientSecret,
    );
    const pinMatches = bytesEqual(expected, ceremony.clientHash!);
    if (!pinMatches || !rsaVerify(ceremony.clientCertPem, clientSecret, signature)) return paired(0);
    this.#options.onPaired({
      certPem: ceremony.clientCertPem,
      deviceName: ceremony.deviceName,
      uniqueId: ceremony.uniqueId,
    });
    return paired(1);
  }

  #drop(ceremony: Ceremony, reply: NvReply): void {
    if (this.#ceremonies.get(ceremony.uniqueId) === ceremony) this.#ceremonies.delete(ceremony.uniqueId);
    const settle = ceremony.settle;
    ceremony.settle = null;
    settle?.(reply);
  }
}

function phraseName(step: Phase): string {
  return {
    waiting_pin: "getservercert",
    got_server_cert: "clientchallenge",
    client_challenged: "serverchallengeresp",
    server_challenge_answered: "clientpairingsecret",
  }[step];
}
