/**
 * The Moonlight side of GameStream pairing (docs/gamestream-protocol.md §3.2), phases 1–4 over a
 * caller-supplied HTTP GET, written from the protocol description. Like MQT it uses SHA-256 (Gen 7 hosts
 * only), aborts at the end of phase 3 when the PIN or the server's signature is wrong, and calls `/unpair`
 * after any failure. Phase 5 needs mutual TLS, so the caller sends `phase5Query()` over HTTPS itself.
 */
import { X509Certificate } from "node:crypto";
import { createSelfSignedCertificate } from "../../host/x509.ts";
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
} from "../../pairing/mod.ts";

export interface ClientIdentity {
  certPem: string;
  keyPem: string;
  /** 16 upper-case hex digits: MQT's random 64-bit id for non-NVIDIA hosts (§2.1). */
  uniqueId: string;
}

/** MQT's identity (§3.1): RSA-2048, CN "NVIDIA GameStream Client", SHA-256, 20-year validity. */
export function createClientIdentity(): ClientIdentity {
  const years20 = 20 * 365 * 86_400_000;
  const cert = createSelfSignedCertificate({
    kind: "rsa2048",
    commonName: "NVIDIA GameStream Client",
    notAfter: new Date(Date.now() + years20),
  });
  return {
    certPem: cert.certPem,
    keyPem: cert.keyPem,
    uniqueId: toHex(crypto.getRandomValues(new Uint8Array(8))),
  };
}

/**
 * Why pairing failed: the host said no or was busy (`refused`), the PIN differed (`wrong_pin`), the
 * pairing secret was not signed by the certificate we received (`mitm`), or a reply was malformed (`bad_reply`).
 */
export type PairingFailure = "refused" | "wrong_pin" | "mitm" | "bad_reply";

export interface PairingOutcome {
  paired: boolean;
  /** The host certificate received in phase 1 ("" when phase 1 failed); pin it for HTTPS. */
  serverCertPem: string;
  reason?: PairingFailure;
  /** The host's `status_message` or our own explanation. */
  message?: string;
}

export interface PairingClientOptions {
  identity: ClientIdentity;
  /** GET of a path with query (`/pair?uniqueid=…`) on the host's HTTP port; resolves with the XML body. */
  httpGet: (pathAndQuery: string) => Promise<string>;
  /** MQT always sends "roth". */
  deviceName?: string;
  randomBytes?: (n: number) => Uint8Array;
}

/** SHA-256 output, the `h_s` part of the decrypted challenge response. */
const HASH_BYTES = 32;
const NONCE_BYTES = 16;

/** Text of the first `<name>…</name>`, or null. */
export function xmlElement(xml: string, name: string): string | null {
  return new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1] ?? null;
}

/** The root's `status_code`, or 0 when absent. */
export function xmlStatusCode(xml: string): number {
  return Number(/<root\b[^>]*\bstatus_code="(\d+)"/.exec(xml)?.[1] ?? "0");
}

function xmlStatusMessage(xml: string): string | undefined {
  return /<root\b[^>]*\bstatus_message="([^"]*)"/.exec(xml)?.[1];
}

class PairingAbort extends Error {
  constructor(readonly reason: PairingFailure, message: string) {
    super(message);
  }
}

export class GameStreamPairingClient {
  readonly #identity: ClientIdentity;
  readonly #httpGet: (pathAndQuery: string) => Promise<string>;
  readonly #deviceName: string;
  readonly #randomBytes: (n: number) => Uint8Array;

  constructor(options: PairingClientOptions) {
    this.#identity = options.identity;
    this.#httpGet = options.httpGet;
    this.#deviceName = options.deviceName ?? "roth";
    this.#randomBytes = options.randomBytes ?? ((n) => crypto.getRandomValues(new Uint8Array(n)));
  }

  /** Request target of a `/pair` call: MQT's `uniqueid` and `uuid` first, then `params`. */
  pairTarget(params: Record<string, string>): string {
    const all = { uniqueid: this.#identity.uniqueId, uuid: toHex(this.#randomBytes(16)), ...params };
    const query = Object.entries(all).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
    return `/pair?${query}`;
  }

  /** The phase-5 request target, to be sent over HTTPS with the client certificate. */
  phase5Query(): string {
    return this.pairTarget({ devicename: this.#deviceName, updateState: "1", phrase: "pairchallenge" });
  }

  /**
   * Phases 1–4 with `pin`. Phase 1 stays pending until the host user enters the PIN. Transport errors reject;
   * every protocol outcome resolves.
   */
  async pair(pin: string): Promise<PairingOutcome> {
    let serverCertPem = "";
    try {
      const salt = this.#randomBytes(NONCE_BYTES);
      const key = pinKey(salt, pin);
      const reply1 = await this.#step({
        devicename: this.#deviceName,
        updateState: "1",
        phrase: "getservercert",
        salt: toHex(salt),
        clientcert: toHex(new TextEncoder().encode(this.#identity.certPem)),
      });
      serverCertPem = decodeServerCert(xmlElement(reply1, "plaincert"));

      const clientChallenge = this.#randomBytes(NONCE_BYTES);
      const reply2 = await this.#step({ clientchallenge: toHex(aesEcbEncrypt(key, clientChallenge)) });
      const response = hexField(reply2, "challengeresponse", HASH_BYTES + NONCE_BYTES);
      if (response.length % 16 !== 0) {
        throw new PairingAbort("bad_reply", "challengeresponse is not whole blocks");
      }
      const decrypted = aesEcbDecrypt(key, response);
      const serverHash = decrypted.subarray(0, HASH_BYTES);
      const serverChallenge = decrypted.subarray(HASH_BYTES, HASH_BYTES + NONCE_BYTES);

      const clientSecret = this.#randomBytes(NONCE_BYTES);
      const clientHash = sha256(serverChallenge, certificateSignature(this.#identity.certPem), clientSecret);
      const reply3 = await this.#step({ serverchallengeresp: toHex(aesEcbEncrypt(key, clientHash)) });
      const pairingSecret = hexField(reply3, "pairingsecret", NONCE_BYTES + 1);
      const serverSecret = pairingSecret.subarray(0, NONCE_BYTES);
      if (!rsaVerify(serverCertPem, serverSecret, pairingSecret.subarray(NONCE_BYTES))) {
        throw new PairingAbort("mitm", "the pairing secret is not signed by the host certificate");
      }
      const expected = sha256(clientChallenge, certificateSignature(serverCertPem), serverSecret);
      if (!bytesEqual(expected, serverHash)) {
        throw new PairingAbort("wrong_pin", "the host's challenge hash does not match: wrong PIN");
      }

      const signature = rsaSign(this.#identity.keyPem, clientSecret);
      await this.#step({ clientpairingsecret: toHex(concatBytes(clientSecret, signature)) });
      return { paired: true, serverCertPem };
    } catch (error) {
      if (!(error instanceof PairingAbort)) throw error;
      // MQT unpairs after any failure and ignores the answer.
      await this.#httpGet(this.pairTarget({}).replace("/pair?", "/unpair?")).catch(() => {});
      return { paired: false, serverCertPem, reason: error.reason, message: error.message };
    }
  }

  /** One `/pair` call; anything but status_code 200 with paired 1 aborts as `refused`. */
  async #step(params: Record<string, string>): Promise<string> {
    const reply = await this.#httpGet(this.pairTarget(params));
    const status = xmlStatusCode(reply);
    if (status !== 200 || xmlElement(reply, "paired") !== "1") {
      throw new PairingAbort("refused", xmlStatusMessage(reply) ?? `status_code ${status}, not paired`);
    }
    return reply;
  }
}

function hexField(xml: string, name: string, minBytes: number): Uint8Array {
  const bytes = fromHex(xmlElement(xml, name) ?? "");
  if (bytes === null || bytes.length < minBytes) {
    throw new PairingAbort("bad_reply", `${name} is missing, not hex or shorter than ${minBytes} bytes`);
  }
  return bytes;
}

/** An empty `plaincert` means another pairing is in progress (§3.2 phase 1). */
function decodeServerCert(hex: string | null): string {
  if (hex === null || hex === "") {
    throw new PairingAbort("refused", "no plaincert: another pairing is in progress");
  }
  const bytes = fromHex(hex);
  if (bytes === null) throw new PairingAbort("bad_reply", "plaincert is not hex");
  const pem = new TextDecoder().decode(bytes);
  try {
    new X509Certificate(pem);
  } catch {
    throw new PairingAbort("bad_reply", "plaincert is not a certificate");
  }
  return pem;
}
