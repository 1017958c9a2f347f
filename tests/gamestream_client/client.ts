/**
 * A Moonlight-like GameStream client for integration tests, written from the protocol facts
 * (docs/gamestream-protocol.md §11): pairing over HTTP + HTTPS with a pinned server certificate, applist,
 * launch, the RTSP handshake, the encrypted ENet control stream, input, and the native receivers
 * (ping, depacketize, FEC, decrypt, decode) for video and audio.
 */
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { X509Certificate } from "node:crypto";
import { NativeCore } from "../../host/native_abi.ts";
import type { MediaSessionHandle } from "../../host/native_abi.ts";
import { bytesEqual, toHex } from "../../pairing/gamestream_crypto.ts";
import { createClientIdentity, GameStreamPairingClient } from "./pairing_client.ts";
import type { ClientIdentity } from "./pairing_client.ts";

export { createClientIdentity };
export type { ClientIdentity };
import {
  CONTROL_TYPE,
  ControlCipher,
  idrRequestPayload,
  periodicPingPayload,
  startBPayload,
} from "../../gamestream/control.ts";
import { encodeInputEvent } from "../../gamestream/input.ts";
import type { InputEvent } from "../../gamestream/input.ts";
import { EnetClientPeer } from "./enet_client.ts";

export function xmlTag(xml: string, tag: string): string | null {
  return new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)?.[1] ?? null;
}

export function xmlStatus(xml: string): number {
  return Number(/status_code="(\d+)"/.exec(xml)?.[1] ?? "0");
}

export interface LaunchedStream {
  rtspPort: number;
  sessionId: string;
  pingPayload: string;
  connectData: number;
  ports: { audio: number; video: number; control: number };
  rikey: Uint8Array;
  rikeyId: number;
  /** The Opus multistream layout the client decodes with, as Moonlight derives it from DESCRIBE. */
  audioLayout: OpusLayout;
}

export type AudioChannels = 2 | 6 | 8;
/** Moonlight's channel masks (§8.5): stereo, 5.1, 7.1. */
const CHANNEL_MASK: Record<AudioChannels, number> = { 2: 0x3, 6: 0x3f, 8: 0x63f };

export interface OpusLayout {
  channels: AudioChannels;
  streams: number;
  coupled_streams: number;
  mapping: number[];
}

/**
 * Moonlight's parseOpusConfigurations (§8.5): stereo is fixed; for 6 or 8 channels the first
 * `surround-params=<n>…` is the normal-quality layout, advertised in GFE's order, so its last mapping digit
 * moves to index 3 (LFE) and the digits from 3 shift up by one.
 */
export function opusLayoutFromDescribe(sdp: string, channels: AudioChannels): OpusLayout {
  if (channels === 2) return { channels, streams: 1, coupled_streams: 1, mapping: [0, 1] };
  const params = [...sdp.matchAll(/surround-params=(\d+)/g)].map((m) => m[1]).find((p) =>
    p[0] === String(channels)
  );
  if (!params || params.length !== 3 + channels) {
    throw new Error(`DESCRIBE has no ${channels}-channel layout`);
  }
  const advertised = [...params.slice(3)].map(Number);
  const mapping = [...advertised.slice(0, 3), advertised[channels - 1], ...advertised.slice(3, channels - 1)];
  return { channels, streams: Number(params[1]), coupled_streams: Number(params[2]), mapping };
}

/** Moonlight's encrypted-RTSP state: the rikey and the last request sequence number used (§5.3). */
export interface RtspSealing {
  key: Uint8Array;
  sequence: number;
}

/**
 * Moonlight's sealRtspMessage, written from the §5.3 description with WebCrypto — deliberately not the host's
 * rtsp_encryption.ts, so a mistake in one is not mirrored in the other:
 * BE32(0x80000000 | L) ‖ BE32(seq) ‖ tag(16) ‖ ciphertext(L), nonce LE32(seq) ‖ 00×6 ‖ 'C' ‖ 'R'.
 */
export async function sealRtspRequest(
  key: Uint8Array,
  sequence: number,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: moonlightRtspIv(sequence, "C"), tagLength: 128 },
      await crypto.subtle.importKey("raw", new Uint8Array(key), "AES-GCM", false, ["encrypt"]),
      new Uint8Array(plaintext),
    ),
  );
  const ciphertext = sealed.subarray(0, sealed.length - 16);
  const frame = new Uint8Array(24 + ciphertext.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, 0x8000_0000 + ciphertext.length);
  view.setUint32(4, sequence);
  frame.set(sealed.subarray(sealed.length - 16), 8);
  frame.set(ciphertext, 24);
  return frame;
}

/** Moonlight's unsealRtspMessage: the whole reply must be one frame with the encrypted bit, 'H' nonce, valid tag. */
export async function openRtspReply(key: Uint8Array, reply: Uint8Array): Promise<Uint8Array> {
  if (reply.length <= 24) throw new Error(`RTSP encrypted reply too short (${reply.length} bytes)`);
  const view = new DataView(reply.buffer, reply.byteOffset, reply.length);
  const typeAndLength = view.getUint32(0);
  if (typeAndLength < 0x8000_0000) throw new Error("Rejecting unencrypted RTSP message");
  if (typeAndLength - 0x8000_0000 + 24 !== reply.length) {
    throw new Error("RTSP encrypted reply length mismatch");
  }
  const joined = new Uint8Array(reply.length - 8);
  joined.set(reply.subarray(24));
  joined.set(reply.subarray(8, 24), reply.length - 24);
  return new Uint8Array(
    await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: moonlightRtspIv(view.getUint32(4), "H"), tagLength: 128 },
      await crypto.subtle.importKey("raw", new Uint8Array(key), "AES-GCM", false, ["decrypt"]),
      joined,
    ),
  );
}

function moonlightRtspIv(sequence: number, origin: "C" | "H"): Uint8Array<ArrayBuffer> {
  const iv = new Uint8Array(12);
  iv[0] = sequence & 0xff;
  iv[1] = (sequence >>> 8) & 0xff;
  iv[2] = (sequence >>> 16) & 0xff;
  iv[3] = (sequence >>> 24) & 0xff;
  iv[10] = origin.charCodeAt(0);
  iv[11] = "R".charCodeAt(0);
  return iv;
}

/** Connects (optionally from `localAddress`), writes `bytes`, reads until the peer closes. */
export function tcpExchange(
  host: string,
  port: number,
  bytes: Uint8Array,
  localAddress?: string,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    const socket = net.connect({ host, port, localAddress }, () => socket.write(bytes));
    socket.on("data", (chunk: Uint8Array) => chunks.push(new Uint8Array(chunk)));
    socket.on("error", reject);
    socket.on("close", () => {
      const total = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let offset = 0;
      for (const chunk of chunks) {
        total.set(chunk, offset);
        offset += chunk.length;
      }
      resolve(total);
    });
  });
}

/** The stream a test client asks for in its ANNOUNCE. */
export interface StreamRequest {
  width: number;
  height: number;
  fps: number;
  bitrateKbps: number;
  packetSize: number;
  codec?: "h264" | "hevc" | "av1";
  audioChannels?: AudioChannels;
}

/**
 * The ANNOUNCE body Moonlight sends for `video` (the attributes our host reads; see
 * docs/gamestream-protocol.md §5.7), with the given `x-ss-general.encryptionEnabled` bits.
 */
export function announceSdp(
  address: string,
  video: StreamRequest & { audioChannels: AudioChannels },
  encryptionEnabled: number,
): string {
  const audioChannels = video.audioChannels;
  return [
    "v=0",
    `o=android 0 14 IN IPv4 ${address}`,
    "s=NVIDIA Streaming Client",
    ...[
      `x-nv-video[0].clientViewportWd:${video.width}`,
      `x-nv-video[0].clientViewportHt:${video.height}`,
      `x-nv-video[0].maxFPS:${video.fps}`,
      `x-nv-video[0].packetSize:${video.packetSize}`,
      "x-nv-video[0].rateControlMode:4",
      "x-nv-video[0].timeoutLengthMs:7000",
      "x-nv-video[0].framesWithInvalidRefThreshold:0",
      `x-nv-vqos[0].bw.maximumBitrateKbps:${video.bitrateKbps}`,
      "x-nv-vqos[0].fec.minRequiredFecPackets:2",
      `x-nv-vqos[0].bitStreamFormat:${{ h264: 0, hevc: 1, av1: 2 }[video.codec ?? "h264"]}`,
      "x-nv-video[0].videoEncoderSlicesPerFrame:1",
      "x-nv-video[0].maxNumReferenceFrames:1",
      `x-nv-audio.surround.numChannels:${audioChannels}`,
      `x-nv-audio.surround.channelMask:${CHANNEL_MASK[audioChannels]}`,
      "x-nv-audio.surround.AudioQuality:0",
      "x-nv-aqos.packetDuration:5",
      "x-ml-general.featureFlags:3",
      "x-nv-general.useReliableUdp:13",
      `x-ss-general.encryptionEnabled:${encryptionEnabled}`,
    ].map((a) => `a=${a} `),
    "",
  ].join("\r\n");
}

export class GameStreamTestClient {
  serverCertPem: string | null = null;
  readonly identity: ClientIdentity;
  control: ControlStream | null = null;
  video: MediaSessionHandle | null = null;
  audio: MediaSessionHandle | null = null;
  #native: NativeCore | null = null;
  #lossWatch: ReturnType<typeof setInterval> | undefined;
  /** IDR requests sent because frames were lost. */
  idrRequestsSent = 0;

  /** The sealing state of the last handshake (null when it was plain RTSP), for tests that continue it. */
  lastRtspSealing: RtspSealing | null = null;

  /** `localAddress` picks the source address of HTTPS and RTSP connections (another "machine" on loopback). */
  constructor(
    readonly host: string,
    readonly httpPort: number,
    identity?: ClientIdentity,
    readonly localAddress?: string,
  ) {
    this.identity = identity ?? createClientIdentity();
  }

  #query(params: Record<string, string | number>): string {
    const all = {
      uniqueid: this.identity.uniqueId,
      uuid: crypto.randomUUID().replaceAll("-", ""),
      ...params,
    };
    return Object.entries(all).map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`).join("&");
  }

  httpGet(path: string, params: Record<string, string | number> = {}): Promise<string> {
    return new Promise((resolve, reject) => {
      http.get(
        { host: this.host, port: this.httpPort, path: `${path}?${this.#query(params)}`, agent: false },
        (res) => {
          let body = "";
          res.on("data", (chunk) => body += chunk);
          res.on("end", () => resolve(body));
        },
      ).on("error", reject);
    });
  }

  /** HTTPS with our client certificate; the server certificate must be the one pinned at pairing. */
  httpsGet(path: string, params: Record<string, string | number> = {}, httpsPort?: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const request = https.get({
        host: this.host,
        port: httpsPort ?? this.httpPort - 5,
        path: `${path}?${this.#query(params)}`,
        cert: this.identity.certPem,
        key: this.identity.keyPem,
        rejectUnauthorized: false,
        agent: false,
        localAddress: this.localAddress,
      }, (res) => {
        const peer = (res.socket as unknown as { getPeerCertificate(): { raw?: Uint8Array } })
          .getPeerCertificate();
        if (this.serverCertPem && peer.raw) {
          const pinned = new Uint8Array(new X509Certificate(this.serverCertPem).raw);
          if (!bytesEqual(pinned, new Uint8Array(peer.raw))) {
            res.destroy();
            reject(new Error("server certificate mismatch"));
            return;
          }
        }
        let body = "";
        res.on("data", (chunk) => body += chunk);
        res.on("end", () => resolve(body));
      });
      request.on("error", reject);
    });
  }

  /**
   * Phases 1–5 of §3.2 (1–4 by the shared pairing client, 5 over pinned mutual TLS). `onWaitingForPin`
   * runs once phase 1 is in flight (the test submits the PIN through the management API then).
   */
  async pair(pin: string, onWaitingForPin: () => Promise<void>): Promise<"paired" | "wrong_pin" | "refused"> {
    const pairing = new GameStreamPairingClient({
      identity: this.identity,
      httpGet: (target) => {
        const [path, query] = target.split("?", 2);
        return this.httpGet(path, Object.fromEntries(new URLSearchParams(query)));
      },
    });
    const outcome = pairing.pair(pin);
    await onWaitingForPin();
    const result = await outcome;
    if (!result.paired) return result.reason === "wrong_pin" ? "wrong_pin" : "refused";
    this.serverCertPem = result.serverCertPem;
    const reply5 = await this.httpsGet("/pair", {
      devicename: "roth",
      updateState: 1,
      phrase: "pairchallenge",
    });
    return xmlTag(reply5, "paired") === "1" ? "paired" : "refused";
  }

  /**
   * `/launch` (or `/resume`) with fresh keys. `corever` 1 is what every current Moonlight sends ("v1 = RTSP
   * encryption"); 0 asks for plain RTSP.
   */
  async launch(
    params: {
      width: number;
      height: number;
      fps: number;
      appId?: number;
      audioChannels?: AudioChannels;
      corever?: number;
      verb?: "launch" | "resume";
    },
  ): Promise<{ xml: string; rikey: Uint8Array; rikeyId: number }> {
    const rikey = crypto.getRandomValues(new Uint8Array(16));
    const rikeyId = new DataView(crypto.getRandomValues(new Uint8Array(4)).buffer).getInt32(0);
    const xml = await this.httpsGet(`/${params.verb ?? "launch"}`, {
      appid: params.appId ?? 1,
      mode: `${params.width}x${params.height}x${params.fps}`,
      additionalStates: 1,
      sops: 0,
      rikey: toHex(rikey),
      rikeyid: rikeyId,
      localAudioPlayMode: 0,
      surroundAudioInfo: (CHANNEL_MASK[params.audioChannels ?? 2] << 16) | (params.audioChannels ?? 2),
      remoteControllersBitmap: 0,
      gcmap: 0,
      corever: params.corever ?? 1,
    });
    return { xml, rikey, rikeyId };
  }

  /**
   * One RTSP exchange on a fresh TCP connection, as Moonlight does it: send the request, read until the host
   * closes. With `sealing` the request is sealed and the reply opened (§5.3); any framing or tag error throws.
   */
  async rtsp(
    port: number,
    request: string,
    sealing?: RtspSealing,
  ): Promise<{ status: number; headers: Map<string, string>; body: string }> {
    let bytes: Uint8Array = new TextEncoder().encode(request);
    if (sealing) bytes = await sealRtspRequest(sealing.key, ++sealing.sequence, bytes);
    let reply = await tcpExchange(this.host, port, bytes, this.localAddress);
    if (sealing) reply = await openRtspReply(sealing.key, reply);
    const text = new TextDecoder().decode(reply);
    const [head, ...rest] = text.split("\r\n\r\n");
    const lines = head.split("\r\n");
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(": ");
      headers.set(line.slice(0, colon), line.slice(colon + 2));
    }
    return { status: Number(lines[0].split(" ")[1]), headers, body: rest.join("\r\n\r\n") };
  }

  /** OPTIONS … PLAY (§5.4) with an ANNOUNCE for H.264 at the given mode; returns the stream facts. */
  async handshake(
    sessionUrl: string,
    keys: { rikey: Uint8Array; rikeyId: number },
    video: StreamRequest,
    encryptionEnabled = 0x01 | 0x02 | 0x04,
  ): Promise<LaunchedStream> {
    const rtspPort = Number(sessionUrl.slice(sessionUrl.lastIndexOf(":") + 1));
    let cseq = 0;
    // Moonlight seals every message when (and only when) the launch answered rtspenc://.
    const sealing = sessionUrl.startsWith("rtspenc://") ? { key: keys.rikey, sequence: 0 } : undefined;
    this.lastRtspSealing = sealing ?? null;
    const req = (method: string, target: string, extra: string[] = [], body = "") =>
      this.rtsp(
        rtspPort,
        `${method} ${target} RTSP/1.0\r\nCSeq: ${++cseq}\r\nX-GS-ClientVersion: 14\r\nHost: ${this.host}\r\n` +
          extra.map((h) => `${h}\r\n`).join("") +
          (body ? `Content-type: application/sdp\r\nContent-length: ${body.length}\r\n` : "") + `\r\n${body}`,
        sealing,
      );
    const expectOk = (reply: { status: number }, what: string) => {
      if (reply.status !== 200) throw new Error(`RTSP ${what} answered ${reply.status}`);
    };
    expectOk(await req("OPTIONS", sessionUrl), "OPTIONS");
    const describe = await req("DESCRIBE", sessionUrl, ["Accept: application/sdp"]);
    expectOk(describe, "DESCRIBE");
    const audioChannels = video.audioChannels ?? 2;
    const audioLayout = opusLayoutFromDescribe(describe.body, audioChannels);
    const audio = await req("SETUP", "streamid=audio/0/0", [
      "Transport: unicast;X-GS-ClientPort=50000-50001",
    ]);
    expectOk(audio, "SETUP audio");
    const sessionId = audio.headers.get("Session")!.split(";")[0];
    const port = (reply: { headers: Map<string, string> }) =>
      Number(/server_port=(\d+)/.exec(reply.headers.get("Transport") ?? "")?.[1]);
    const videoSetup = await req("SETUP", "streamid=video/0/0", [`Session: ${sessionId}`]);
    expectOk(videoSetup, "SETUP video");
    const controlSetup = await req("SETUP", "streamid=control/13/0", [`Session: ${sessionId}`]);
    expectOk(controlSetup, "SETUP control");
    const sdp = announceSdp(this.host, { ...video, audioChannels }, encryptionEnabled);
    expectOk(await req("ANNOUNCE", "streamid=control/13/0", [`Session: ${sessionId}`], sdp), "ANNOUNCE");
    expectOk(await req("PLAY", "/", [`Session: ${sessionId}`]), "PLAY");
    return {
      rtspPort,
      sessionId,
      pingPayload: videoSetup.headers.get("X-SS-Ping-Payload")!,
      connectData: Number(controlSetup.headers.get("X-SS-Connect-Data")),
      ports: { audio: port(audio), video: port(videoSetup), control: port(controlSetup) },
      rikey: keys.rikey,
      rikeyId: keys.rikeyId,
      audioLayout,
    };
  }

  /** Starts native receivers (pinging the host's media ports) and the control stream. */
  async startStreams(
    stream: LaunchedStream,
    options: {
      packetSize: number;
      videoLossPpm?: number;
      encrypted?: boolean;
      codec?: "h264" | "hevc" | "av1";
    },
  ): Promise<void> {
    this.#native ??= NativeCore.open();
    const key = toHex(stream.rikey).toLowerCase();
    const encrypted = options.encrypted ?? true;
    this.video = await this.#native.startGameStreamVideoReceiver({
      host: `${this.host}:${stream.ports.video}`,
      bind: "127.0.0.1:0",
      ping_payload: stream.pingPayload,
      packet_size: options.packetSize,
      encrypt: encrypted,
      key,
      loss_ppm: options.videoLossPpm ?? 0,
      codec: options.codec ?? "h264",
    });
    this.audio = await this.#native.startGameStreamAudioReceiver({
      host: `${this.host}:${stream.ports.audio}`,
      bind: "127.0.0.1:0",
      ping_payload: stream.pingPayload,
      encrypt: encrypted,
      key,
      rikeyid: stream.rikeyId >>> 0,
      ...stream.audioLayout,
    });
    this.control = await ControlStream.connect(
      this.host,
      stream.ports.control,
      stream.connectData,
      stream.rikey,
    );
    this.#watchForLoss();
  }

  /**
   * Moonlight's recovery: a frame lost beyond FEC breaks the reference chain, so the client asks for an
   * IDR (it has no reference-frame invalidation for our encoder) and decodes again from there.
   */
  #watchForLoss(): void {
    let lostSeen = 0;
    clearInterval(this.#lossWatch);
    this.#lossWatch = setInterval(() => {
      const lost = Number(this.video?.stats().frames_lost ?? 0);
      if (lost > lostSeen && this.control && !this.control.disconnected) {
        lostSeen = lost;
        this.idrRequestsSent++;
        this.control.sendMessage(CONTROL_TYPE.IDR_REQUEST, idrRequestPayload());
      }
    }, 20);
  }

  /** Drops off the network: receivers stop and the control stream goes silent (no ENet disconnect). */
  async vanish(): Promise<void> {
    clearInterval(this.#lossWatch);
    this.control?.abandon();
    this.control = null;
    await this.close();
  }

  async close(): Promise<void> {
    clearInterval(this.#lossWatch);
    this.control?.close();
    await this.video?.close();
    await this.audio?.close();
    this.#native?.close();
    this.#native = null;
  }
}

export interface SentControlMessage {
  envelope: Uint8Array;
  datagrams: Uint8Array[];
}

/** Moonlight's control stream: ENet connect with the connect data, Start A/B, 100 ms pings, input. */
export class ControlStream {
  readonly received: { type: number; payload: Uint8Array }[] = [];
  disconnected = false;
  #timer: ReturnType<typeof setInterval>;
  #pingTimer: ReturnType<typeof setInterval>;

  private constructor(
    private readonly socket: Deno.DatagramConn,
    private readonly address: Deno.NetAddr,
    private readonly peer: EnetClientPeer,
    private readonly cipher: ControlCipher,
  ) {
    this.#timer = setInterval(() => this.#send(this.peer.tick(performance.now()).datagrams), 10);
    this.#pingTimer = setInterval(() => {
      if (this.peer.state === "connected") {
        this.sendMessage(CONTROL_TYPE.PERIODIC_PING, periodicPingPayload());
      }
    }, 100);
    this.#receiveLoop();
  }

  static async connect(
    host: string,
    port: number,
    connectData: number,
    key: Uint8Array,
  ): Promise<ControlStream> {
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const address: Deno.NetAddr = { transport: "udp", hostname: host, port };
    const stream = new ControlStream(socket, address, new EnetClientPeer(), new ControlCipher(key, "client"));
    stream.#send(stream.peer.connect(connectData, performance.now()).datagrams);
    const deadline = Date.now() + 10_000;
    while (stream.peer.state !== "connected") {
      if (Date.now() > deadline || stream.peer.state === "disconnected") {
        stream.close();
        throw new Error("control stream did not connect");
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    stream.sendMessage(CONTROL_TYPE.IDR_REQUEST, idrRequestPayload());
    stream.sendMessage(CONTROL_TYPE.START_B, startBPayload());
    return stream;
  }

  #send(datagrams: Uint8Array[]): void {
    for (const d of datagrams) this.socket.send(d, this.address).catch(() => {});
  }

  async #receiveLoop(): Promise<void> {
    try {
      for (;;) {
        const [bytes] = await this.socket.receive();
        const out = this.peer.receive(bytes, performance.now());
        this.#send(out.datagrams);
        if (out.events.includes("disconnected")) this.disconnected = true;
        for (const message of out.delivered) {
          try {
            this.received.push(this.cipher.open(message.payload));
          } catch { /* a test would see it missing */ }
        }
      }
    } catch { /* socket closed */ }
  }

  /** Returns what went out (the sealed envelope and its datagrams), so a security test can replay them. */
  sendMessage(type: number, payload: Uint8Array, channel = 0): SentControlMessage | null {
    if (this.peer.state !== "connected") return null;
    return this.sendSealed(this.cipher.seal(type, payload), channel);
  }

  sendInput(event: InputEvent): SentControlMessage | null {
    return this.sendMessage(CONTROL_TYPE.INPUT, encodeInputEvent(event), 2);
  }

  /** Sends an already-sealed envelope in a fresh ENet command (what an attacker holding a capture can do). */
  sendSealed(envelope: Uint8Array, channel = 0): SentControlMessage | null {
    if (this.peer.state !== "connected") return null;
    const datagrams = this.peer.send(channel, envelope, performance.now()).datagrams;
    this.#send(datagrams);
    return { envelope, datagrams };
  }

  /** Sends bytes as they are from this stream's socket (a replayed capture). */
  sendRaw(datagram: Uint8Array): void {
    this.#send([datagram]);
  }

  /** Goes silent without an ENet disconnect, as a client that lost its network does. */
  abandon(): void {
    clearInterval(this.#timer);
    clearInterval(this.#pingTimer);
    try {
      this.socket.close();
    } catch { /* already closed */ }
  }

  close(): void {
    clearInterval(this.#timer);
    clearInterval(this.#pingTimer);
    this.#send(this.peer.disconnect(performance.now()).datagrams);
    try {
      this.socket.close();
    } catch { /* already closed */ }
  }
}
