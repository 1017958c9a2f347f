/**
 * A Moonlight-like GameStream client for integration tests, written from the protocol facts
 * (../shared/docs/gamestream.md §11): pairing over HTTP + HTTPS with a pinned server certificate, applist,
 * launch, the RTSP handshake, the encrypted ENet control stream, input, and the native receivers
 * (ping, depacketize, FEC, decrypt, decode) for video and audio.
 */
import http from "node:http";
import https from "node:https";
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

  constructor(readonly host: string, readonly httpPort: number, identity?: ClientIdentity) {
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

  async launch(
    params: { width: number; height: number; fps: number; appId?: number; audioChannels?: AudioChannels },
  ): Promise<{ xml: string; rikey: Uint8Array; rikeyId: number }> {
    const rikey = crypto.getRandomValues(new Uint8Array(16));
    const rikeyId = new DataView(crypto.getRandomValues(new Uint8Array(4)).buffer).getInt32(0);
    const xml = await this.httpsGet("/launch", {
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
      corever: 1,
    });
    return { xml, rikey, rikeyId };
  }

  async rtsp(
    port: number,
    request: string,
  ): Promise<{ status: number; headers: Map<string, string>; body: string }> {
    const conn = await Deno.connect({ hostname: this.host, port });
    await conn.write(new TextEncoder().encode(request));
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    conn.close();
    const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
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
    video: {
      width: number;
      height: number;
      fps: number;
      bitrateKbps: number;
      packetSize: number;
      codec?: "h264" | "hevc" | "av1";
      audioChannels?: AudioChannels;
    },
    encryptionEnabled = 0x01 | 0x02 | 0x04,
  ): Promise<LaunchedStream> {
    const rtspPort = Number(sessionUrl.slice(sessionUrl.lastIndexOf(":") + 1));
    let cseq = 0;
    const req = (method: string, target: string, extra: string[] = [], body = "") =>
      this.rtsp(
        rtspPort,
        `${method} ${target} RTSP/1.0\r\nCSeq: ${++cseq}\r\nX-GS-ClientVersion: 14\r\nHost: ${this.host}\r\n` +
          extra.map((h) => `${h}\r\n`).join("") +
          (body ? `Content-type: application/sdp\r\nContent-length: ${body.length}\r\n` : "") + `\r\n${body}`,
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
    const sdp = [
      "v=0",
      `o=android 0 14 IN IPv4 ${this.host}`,
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

  close(): void {
    clearInterval(this.#timer);
    clearInterval(this.#pingTimer);
    this.#send(this.peer.disconnect(performance.now()).datagrams);
    try {
      this.socket.close();
    } catch { /* already closed */ }
  }
}
