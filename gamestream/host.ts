/**
 * The GameStream plane (`serve --gamestream`): nvhttp + pairing, launch, RTSP, control stream and the
 * native media sessions, for one streaming session at a time (Moonlight's model: one app, one client).
 *
 * Session life: /launch stores keys and the launching address (the owner) and raises an RTSP handshake; PLAY
 * starts native video (bound by the owner's ping, RTP + RS FEC, optional AES-GCM) and audio; the control stream
 * binds by ENet connect data from the owner's IP and carries IDR requests and input; /cancel, the management API, unpairing the client, a control timeout or
 * disconnect stop it, sending Moonlight the termination message first.
 *
 * Section numbers (§) refer to docs/gamestream-protocol.md.
 */
import { randomBytes } from "node:crypto";
import { X509Certificate } from "node:crypto";
import { createAppCatalogue, DESKTOP_APP_ID } from "./apps.ts";
import type { AppCatalogue } from "./apps.ts";
import { CONTROL_TYPE, decodeClientMessage, hdrModePayload, terminationPayload } from "./control.ts";
import { startControlServer } from "./control_server.ts";
import type { ControlConnection, ControlRemote, ControlServer } from "./control_server.ts";
import type { InputEvent } from "./input.ts";
import {
  LaunchParamError,
  parseLaunchParams,
  renderLaunchFailure,
  renderLaunchParamError,
  renderLaunchResponse,
  rtspSessionUrl,
  wantsEncryptedRtsp,
} from "./launch.ts";
import type { LaunchRequest } from "./launch.ts";
import { startNvHttpServers } from "./nvhttp_server.ts";
import type { NvHttpReply, NvHttpRequest, NvHttpServers } from "./nvhttp_server.ts";
import { renderAppList, renderCancel, renderError, renderServerInfo, renderUnpair } from "./nvhttp_xml.ts";
import type { CodecSupport } from "./nvhttp_xml.ts";
import { gameStreamPorts, normalizeAddress, RtspSession } from "./rtsp.ts";
import type { GameStreamPorts, NegotiatedStreams, RtspSessionAction } from "./rtsp.ts";
import { startRtspServer } from "./rtsp_server.ts";
import { classifyFecStatus, liveFigures, SessionWatch } from "./session_watch.ts";
import type { FecTally } from "./session_watch.ts";
import type { RtspServer } from "./rtsp_server.ts";
import { ML_FF_SESSION_ID_V1, SS_ENC_AUDIO, SS_ENC_VIDEO } from "./sdp.ts";
import { GameStreamPairing } from "../pairing/gamestream_pairing.ts";
import type { GameStreamTrustStore } from "../pairing/trust_store.ts";
import { isLoggedOccurrence } from "../host/log.ts";
import type { Logger } from "../host/log.ts";
import type { RuntimeStatus } from "../mgmt/mod.ts";
import type {
  MediaSessionHandle,
  NativeCore,
  VideoFaultInjection,
  VideoSenderHandle,
} from "../host/native_abi.ts";

/** Where "Desktop" comes from until per-client virtual displays exist (issue 4, item 7). */
export type DesktopSource = { kind: "x11"; display: string } | { kind: "synthetic" };

export interface InputSink {
  readonly name: string;
  inject(event: InputEvent): void;
}

export interface GameStreamHostOptions {
  bind: string;
  basePort: number;
  hostname: string;
  uniqueId: string;
  certPem: string;
  keyPem: string;
  store: GameStreamTrustStore;
  native: NativeCore;
  codecs: CodecSupport;
  desktop: DesktopSource;
  input: InputSink;
  audioSource: "tone" | "pulse" | "auto";
  log: Logger;
  /** Video FEC percentage (Sunshine's default 20). */
  fecPercent?: number;
  /** Host-side video loss injection for tests and demos (parts per million). */
  videoLossPpm?: number;
  /**
   * How long a session whose client vanished without /cancel (control stream timeout or ENet disconnect) is
   * kept for `/resume`; 0 ends it at once. Default 0 here; `serve` passes `--gamestream-resume-grace`.
   */
  resumeGraceMs?: number;
  /**
   * TEST FAULT INJECTION for the native video sender (`PUNKTFUNK_TEST_VIDEO_FAULT`, read by `serve`): deliberate
   * encoder failures or a killed worker, to prove the session watch and the encoder fallback. Never set otherwise.
   */
  videoFault?: VideoFaultInjection;
}

interface ActiveSession {
  request: LaunchRequest;
  clientFingerprint: string | null;
  /**
   * Source address of the HTTPS `/launch` (or `/resume`) that created the session: the only address whose RTSP
   * requests are served (and the one media pings and the ENet connect are to come from).
   */
  ownerIp: string;
  rtsp: RtspSession;
  pingPayload: string;
  connectData: number;
  negotiated: NegotiatedStreams | null;
  bitrateKbps: number;
  video: VideoSenderHandle | null;
  audio: MediaSessionHandle | null;
  control: ControlConnection | null;
  startedMs: number;
  /** Set while the client is gone and the session waits for `/resume` (media stopped, app kept). */
  suspended: { sinceMs: number; timer: ReturnType<typeof setTimeout> } | null;
  /** Polls the native workers while media runs (null before PLAY and while suspended). */
  watch: SessionWatch | null;
  /** IDR and reference-invalidation requests from the client's control stream. */
  idrRequests: number;
  /** FEC blocks the client reported repaired or lost (its 0x5502 FEC status messages). */
  fec: FecTally;
}

/** Bitrate bounds: below 500 kbit/s nothing is watchable; x264 on 2 cores tops out far below 150 Mbit/s. */
const MIN_BITRATE_KBPS = 500;
const MAX_BITRATE_KBPS = 150_000;
/** Sunshine's ping_timeout: a launch whose client never connects the control stream is dropped. */
const LAUNCH_TIMEOUT_MS = 10_000;
/**
 * Termination reason when the host ends a session because its media failed: E_FAIL, a generic HRESULT failure.
 * Moonlight treats every reason but the graceful one as an error and shows its code, so the user learns the
 * stream died instead of seeing a clean "stream ended".
 */
export const TERMINATION_HOST_ERROR = 0x80004005;
/** 1×1 transparent PNG: box art placeholder until apps have images. */
const PLACEHOLDER_PNG = Uint8Array.from(
  atob("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="),
  (c) => c.charCodeAt(0),
);

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Opus layout Moonlight will decode with (§8.5): normal surround is reordered by the client. */
export interface OpusLayout {
  channels: 2 | 6 | 8;
  streams: number;
  coupled_streams: number;
  mapping: number[];
}

export function opusLayoutFor(channels: 2 | 6 | 8, highQuality: boolean): OpusLayout {
  if (channels === 2) return { channels, streams: 1, coupled_streams: 1, mapping: [0, 1] };
  if (highQuality) {
    return { channels, streams: channels, coupled_streams: 0, mapping: [...Array(channels).keys()] };
  }
  // Advertised (DEFAULT_SURROUND_PARAMS) 5.1 "642012453", 7.1 "85301245367"; the client moves the last
  // digit to index 3 and shifts 3..n−2 up by one.
  const advertised = channels === 6 ? [0, 1, 2, 4, 5, 3] : [0, 1, 2, 4, 5, 3, 6, 7];
  const mapping = [...advertised.slice(0, 3), advertised[channels - 1], ...advertised.slice(3, channels - 1)];
  return { channels, streams: channels === 6 ? 4 : 5, coupled_streams: channels === 6 ? 2 : 3, mapping };
}

export class GameStreamHost {
  readonly ports: GameStreamPorts;
  readonly pairing: GameStreamPairing;
  readonly apps: AppCatalogue = createAppCatalogue();
  #session: ActiveSession | null = null;
  #nvhttp: NvHttpServers | null = null;
  #rtsp: RtspServer | null = null;
  #control: ControlServer | null = null;
  #tickTimer: ReturnType<typeof setInterval> | null = null;
  #inputEvents = 0;

  constructor(private readonly options: GameStreamHostOptions) {
    this.ports = gameStreamPorts(options.basePort);
    this.pairing = new GameStreamPairing({
      serverCertPem: options.certPem,
      serverKeyPem: options.keyPem,
      onPaired: (client) => this.#pin(client.certPem, client.deviceName),
    });
  }

  async start(): Promise<void> {
    const { options } = this;
    const log = options.log;
    this.#nvhttp = await startNvHttpServers({
      bind: options.bind,
      httpPort: this.ports.http,
      httpsPort: this.ports.https,
      certPem: options.certPem,
      keyPem: options.keyPem,
      isPaired: (fingerprint) => options.store.isPaired(fingerprint),
      handle: (request) => this.#handle(request),
      log: log.child("nvhttp"),
    });
    this.#rtsp = startRtspServer({
      bind: options.bind,
      port: this.ports.rtsp,
      // A kept session has no handshake in progress: its next one starts with /resume.
      session: () => this.#session && !this.#session.suspended ? this.#session.rtsp : null,
      onActions: (actions, rtsp) => this.#onRtspActions(actions, rtsp),
      log: log.child("rtsp"),
    });
    this.#control = startControlServer({
      bind: options.bind,
      port: this.ports.control,
      admit: (data, remote) => this.#admitControl(data, remote),
      accept: (data, remote, connection) => this.#acceptControl(data, remote, connection),
      log: log.child("control"),
    });
    this.#tickTimer = setInterval(() => {
      this.pairing.tick();
      const session = this.#session;
      if (
        session && !session.control && !session.suspended &&
        Date.now() - session.startedMs > LAUNCH_TIMEOUT_MS + 20_000
      ) {
        log.info("launch expired: the client never connected the control stream");
        void this.stopSession("launch timeout");
      }
    }, 1000);
    log.info("GameStream host listening", { ...this.ports, bind: options.bind });
  }

  async close(): Promise<void> {
    if (this.#tickTimer !== null) clearInterval(this.#tickTimer);
    await this.stopSession("host shutting down");
    this.pairing.close();
    this.#control?.close();
    this.#rtsp?.close();
    await this.#nvhttp?.close();
  }

  /** RTSP requests refused so far, by reason (stranger, stream_limits, replayed …). */
  rtspRefusals(): Record<string, number> {
    return this.#rtsp?.refusals() ?? {};
  }

  /** Input events handed to the injection backend so far. */
  get inputEvents(): number {
    return this.#inputEvents;
  }

  get currentGameId(): number {
    return this.#session ? this.#session.request.appId ?? DESKTOP_APP_ID : 0;
  }

  status(): Pick<RuntimeStatus, "video_streaming" | "audio_streaming" | "session" | "stream" | "live"> {
    const session = this.#session;
    const negotiated = session?.negotiated;
    const snapshot = session?.video ? session.watch?.snapshot : null;
    return {
      live: session && snapshot
        ? liveFigures(snapshot.stats, {
          clientAddress: session.watch?.clientAddress ?? session.ownerIp,
          idrRequests: session.idrRequests,
          fec: session.fec,
          rttMs: session.control?.roundTripMs ?? null,
          nowMs: snapshot.atMs,
        })
        : null,
      video_streaming: session?.video !== null && session?.video !== undefined,
      audio_streaming: session?.audio !== null && session?.audio !== undefined,
      session: session
        ? {
          width: session.request.mode.width,
          height: session.request.mode.height,
          fps: session.request.mode.fps,
        }
        : null,
      stream: negotiated
        ? {
          width: negotiated.parameters.video.width,
          height: negotiated.parameters.video.height,
          fps: negotiated.parameters.video.maxFps,
          bitrate_kbps: session!.bitrateKbps,
          packet_size: negotiated.parameters.video.packetSize,
          min_fec: negotiated.parameters.video.minRequiredFecPackets,
          codec: negotiated.parameters.video.codec === "hevc"
            ? "h265" as const
            : negotiated.parameters.video.codec,
        }
        : null,
    };
  }

  requestIdr(): boolean {
    const video = this.#session?.video;
    if (!video) return false;
    video.requestIdr();
    return true;
  }

  /** Removes a paired client; its live session ends at once. */
  async unpair(fingerprint: string): Promise<boolean> {
    const removed = this.options.store.remove(fingerprint);
    if (this.#session?.clientFingerprint === fingerprint) await this.stopSession("client unpaired");
    return removed;
  }

  /** Idempotent. `termination` is the reason code the client's control stream is sent (graceful by default). */
  async stopSession(reason: string, termination?: number): Promise<void> {
    const session = this.#session;
    if (!session) return;
    this.#session = null;
    session.watch?.stop();
    if (session.suspended) clearTimeout(session.suspended.timer);
    this.options.log.info("GameStream session ending", { reason });
    session.control?.close(CONTROL_TYPE.TERMINATION, terminationPayload(termination));
    const video = session.video;
    const audio = session.audio;
    session.video = null;
    session.audio = null;
    await Promise.all([video?.close(), audio?.close()]);
  }

  #pin(certPem: string, deviceName: string): void {
    const cert = new X509Certificate(certPem);
    const der = new Uint8Array(cert.raw);
    const fingerprint = cert.fingerprint256.replaceAll(":", "").toLowerCase();
    this.options.store.add({
      fingerprint,
      certDer: der,
      subject: cert.subject || null,
      notBeforeUnix: Math.floor(Date.parse(cert.validFrom) / 1000) || null,
      notAfterUnix: Math.floor(Date.parse(cert.validTo) / 1000) || null,
      deviceName: deviceName || null,
      pairedAtUnix: Math.floor(Date.now() / 1000),
    });
    this.options.log.info("GameStream client paired", { fingerprint, device: deviceName });
  }

  async #handle(request: NvHttpRequest): Promise<NvHttpReply> {
    const ok = (body: string): NvHttpReply => ({ status: 200, body });
    switch (request.path) {
      case "/serverinfo":
        return ok(renderServerInfo({
          hostname: this.options.hostname,
          uniqueId: this.options.uniqueId,
          httpsPort: this.ports.https,
          externalPort: this.ports.http,
          mac: "00:00:00:00:00:00",
          codecs: this.options.codecs,
          currentGameId: this.currentGameId,
        }, {
          https: request.https,
          pairedClientPresent: request.clientPaired,
          uniqueIdQueryPresent: request.query.has("uniqueid"),
          localAddress: request.localAddress,
        }));
      case "/pair": {
        const before = this.pairing.refusals();
        const reply = this.pairing.handle(request.query, {
          sourceIp: request.sourceIp,
          overHttps: request.https,
          clientCertPaired: request.clientPaired,
          closed: request.closed,
        });
        // handle() decides synchronously; a stranger reaching for someone else's ceremony is worth a line.
        const after = this.pairing.refusals();
        if (
          after.foreignAddress > before.foreignAddress || after.supersedeRefused > before.supersedeRefused
        ) {
          this.options.log.warn("pairing request for a ceremony of another address refused", {
            source: request.sourceIp,
          });
        }
        return await reply;
      }
      case "/unpair":
        // Never ends a pairing ceremony: nothing in the request proves it comes from that ceremony's client
        // (see "Pairing defences" in docs/architecture.md). The ceremony ends by itself.
        return ok(renderUnpair());
      case "/applist":
        return ok(renderAppList(this.apps.apps));
      case "/appasset":
        return { status: 200, body: PLACEHOLDER_PNG, contentType: "image/png" };
      case "/launch":
      case "/resume":
        return this.#launch(request, request.path === "/launch" ? "launch" : "resume");
      case "/cancel":
        await this.stopSession("client cancelled");
        return ok(renderCancel());
      default:
        return { status: 404, body: renderError(404, "Not found") };
    }
  }

  async #launch(request: NvHttpRequest, kind: "launch" | "resume"): Promise<NvHttpReply> {
    let launch: LaunchRequest;
    try {
      launch = parseLaunchParams(request.query, kind);
    } catch (error) {
      if (error instanceof LaunchParamError) {
        return { status: 200, body: renderLaunchParamError(kind, error) };
      }
      throw error;
    }
    const current = this.#session;
    if (kind === "launch" && (current?.video || current?.suspended)) {
      return { status: 200, body: renderLaunchFailure(kind, 400, "An app is already running on this host") };
    }
    if (kind === "resume" && !current) {
      return { status: 200, body: renderLaunchFailure(kind, 503, "No running app to resume") };
    }
    // Only the paired client that launched the app may take it over; another one must quit it (/cancel) first.
    if (kind === "resume" && current && current.clientFingerprint !== request.clientFingerprint) {
      this.options.log.warn("GameStream resume refused: the session belongs to another client", {
        client: request.clientFingerprint,
        source: request.sourceIp,
      });
      return {
        status: 200,
        body: renderLaunchFailure(kind, 403, "The running app was started by another client; quit it first"),
      };
    }
    const appId = launch.appId ?? this.#session?.request.appId ?? DESKTOP_APP_ID;
    if (appId !== 0 && this.apps.findApp(appId) === null) {
      return {
        status: 200,
        body: renderLaunchFailure(kind, 404, "Failed to start the specified application"),
      };
    }
    // A new launch (or a resume) replaces a handshake that never got to streaming.
    await this.stopSession("replaced by a new launch");
    const pingPayload = toHex(new Uint8Array(randomBytes(8))).toUpperCase();
    const connectData = new DataView(new Uint8Array(randomBytes(4)).buffer).getUint32(0);
    const encryptedRtsp = wantsEncryptedRtsp(launch);
    const ownerIp = normalizeAddress(request.sourceIp);
    this.#session = {
      request: { ...launch, appId },
      clientFingerprint: request.clientFingerprint,
      ownerIp,
      rtsp: new RtspSession({
        ports: this.ports,
        codecSupport: this.options.codecs,
        audioChannelCounts: [2, 6, 8],
        clientSurroundParams: launch.surroundParams ?? undefined,
        videoEncryption: "opportunistic",
        hostFeatureFlags: 0,
        supportsReferenceFrameInvalidation: false,
        pingPayload,
        connectData,
        sessionId: "DEADBEEFCAFE",
        owner: ownerIp,
        encryptionKey: encryptedRtsp ? launch.rikey : undefined,
      }),
      pingPayload,
      connectData,
      negotiated: null,
      bitrateKbps: 0,
      video: null,
      audio: null,
      control: null,
      startedMs: Date.now(),
      suspended: null,
      watch: null,
      idrRequests: 0,
      fec: { recovered: 0, failed: 0 },
    };
    this.options.log.info("GameStream launch", {
      kind,
      app: appId,
      mode: `${launch.mode.width}x${launch.mode.height}x${launch.mode.fps}`,
      client: request.clientFingerprint,
      owner: ownerIp,
      encrypted_rtsp: encryptedRtsp,
    });
    // corever ≥ 1 (every current Moonlight): rtspenc:// makes the client seal its RTSP with the launch's rikey.
    return {
      status: 200,
      body: renderLaunchResponse(kind, rtspSessionUrl(request.localAddress, this.ports.rtsp, encryptedRtsp)),
    };
  }

  #onRtspActions(actions: RtspSessionAction[], rtsp: RtspSession): void {
    const session = this.#session;
    if (!session || session.rtsp !== rtsp) return;
    for (const action of actions) {
      if (action.type === "start_streams") {
        void this.#startMedia(session, action.streams).catch((error) => {
          this.options.log.error("GameStream media failed to start", { error: (error as Error).message });
          void this.stopSession("media failed");
        });
      } else {
        void this.stopSession("RTSP TEARDOWN");
      }
    }
  }

  async #startMedia(session: ActiveSession, streams: NegotiatedStreams): Promise<void> {
    const { options } = this;
    const { video, audio } = streams.parameters;
    session.negotiated = streams;
    const requested = video.configuredBitrateKbps || video.maximumBitrateKbps;
    session.bitrateKbps = Math.min(MAX_BITRATE_KBPS, Math.max(MIN_BITRATE_KBPS, requested));
    const key = toHex(session.request.rikey);
    const pingPayload = (streams.parameters.moonlightFeatureFlags & ML_FF_SESSION_ID_V1) !== 0
      ? session.pingPayload
      : undefined;
    const even = (n: number) => Math.max(64, n - (n % 2));
    const videoConfig = {
      width: even(video.width),
      height: even(video.height),
      fps: Math.max(1, Math.min(video.maxFps, 240)),
      codec: video.codec,
      bitrate_kbps: session.bitrateKbps,
      fec: { scheme: "gf8" as const, percent: options.fecPercent ?? 20 },
      key,
      bind: `${options.bind}:${this.ports.video}`,
      loss_ppm: options.videoLossPpm ?? 0,
      ...(options.videoFault ? { fault: options.videoFault } : {}),
      gamestream: {
        packet_size: video.packetSize,
        min_required_fec: video.minRequiredFecPackets,
        encrypt: (streams.parameters.encryptionFlags & SS_ENC_VIDEO) !== 0,
        ping_payload: pingPayload,
        client_ip: session.ownerIp,
      },
    };
    let videoHandle: VideoSenderHandle;
    let videoSource = options.desktop.kind === "x11" ? `x11 ${options.desktop.display}` : "synthetic";
    try {
      videoHandle = await options.native.startVideoSender({
        ...videoConfig,
        source: options.desktop.kind === "x11" ? options.desktop : { kind: "synthetic" },
      });
    } catch (error) {
      if (options.desktop.kind !== "x11") throw error;
      // A session at the client's mode must not fail for lack of a display: fall back to the synthetic source.
      options.log.warn("X11 capture unavailable, streaming the synthetic source", {
        error: (error as Error).message,
      });
      videoHandle = await options.native.startVideoSender({ ...videoConfig, source: { kind: "synthetic" } });
      videoSource = "synthetic";
    }
    if (this.#session !== session || session.suspended) {
      await videoHandle.close();
      return;
    }
    session.video = videoHandle;
    const encryptAudio = (streams.parameters.encryptionFlags & SS_ENC_AUDIO) !== 0 ||
      (streams.parameters.nvFeatureFlags & 0x20) !== 0;
    const layout = opusLayoutFor(audio.channelCount, streams.audioHighQuality);
    const audioConfig = {
      ...layout,
      packet_duration_ms: audio.packetDurationMs,
      bitrate_bps: audioBitrate(audio.channelCount, streams.audioHighQuality),
      bind: `${options.bind}:${this.ports.audio}`,
      ping_payload: pingPayload,
      client_ip: session.ownerIp,
      encrypt: encryptAudio,
      key,
      rikeyid: session.request.rikeyId >>> 0,
    };
    let audioHandle: MediaSessionHandle;
    try {
      audioHandle = await options.native.startGameStreamAudioSender({
        ...audioConfig,
        source: options.audioSource === "tone" ? { kind: "tone" } : { kind: "pulse" },
      });
    } catch (error) {
      if (options.audioSource === "pulse") throw error;
      options.log.info("desktop audio capture unavailable, sending a test tone", {
        error: (error as Error).message,
      });
      audioHandle = await options.native.startGameStreamAudioSender({
        ...audioConfig,
        source: { kind: "tone" },
      });
    }
    if (this.#session !== session || session.suspended) {
      await audioHandle.close();
      return;
    }
    session.audio = audioHandle;
    this.#watch(session, videoHandle, audioHandle);
    options.log.info("GameStream streams started", {
      video:
        `${videoConfig.width}x${videoConfig.height}@${videoConfig.fps} ${video.codec} ${session.bitrateKbps} kbit/s`,
      video_source: videoSource,
      audio: `${audio.channelCount} ch`,
      video_encrypted: videoConfig.gamestream.encrypt,
      audio_encrypted: encryptAudio,
    });
  }

  /** Starts polling the session's native workers; one that dies ends the session with its reason. */
  #watch(session: ActiveSession, video: VideoSenderHandle, audio: MediaSessionHandle): void {
    const log = this.options.log;
    const errorCounts = new Map<string, number>();
    const watch = new SessionWatch([{ name: "video", handle: video }, { name: "audio", handle: audio }], {
      dead: (reason) => {
        if (this.#session !== session || session.watch !== watch) return;
        log.error("GameStream media worker died, ending the session", { reason });
        void this.stopSession(reason, TERMINATION_HOST_ERROR);
      },
      event: (worker, event) => {
        if (event.event === "encoder_fallback") {
          log.warn("video encoder failed; the next encoder of the chain took over with an IDR", {
            from: String(event.from),
            to: String(event.to),
            reason: String(event.reason),
          });
        } else if (event.event === "error") {
          // A worker failing every frame cannot flood the log.
          const count = (errorCounts.get(worker) ?? 0) + 1;
          errorCounts.set(worker, count);
          if (isLoggedOccurrence(count)) {
            log.warn("native media error", { worker, message: String(event.message), count });
          }
        } else if (event.event === "events_dropped") {
          log.debug("native media events dropped", { worker, count: Number(event.count) });
        }
      },
    });
    session.watch = watch;
    watch.start();
  }

  /**
   * Only the session's owner (the IP that launched it) with the session's connect data gets a control peer: the
   * connect data travels in plain RTSP, so a stranger who sniffed it is refused and the owner is not locked out.
   */
  #admitControl(connectData: number, remote: ControlRemote): boolean {
    const session = this.#session;
    // A kept (suspended) session takes no control stream: its client comes back through /resume.
    return session !== null && session.control === null && !session.suspended &&
      session.connectData === connectData && remote.ip === session.ownerIp;
  }

  #acceptControl(connectData: number, remote: ControlRemote, connection: ControlConnection) {
    const session = this.#session;
    if (!session || !this.#admitControl(connectData, remote)) return null;
    session.control = connection;
    this.options.log.info("GameStream control stream bound", { remote: connection.remote });
    return {
      key: session.request.rikey,
      onMessage: (type: number, payload: Uint8Array) => this.#onControlMessage(session, type, payload),
      onClosed: (cause: string) => {
        if (this.#session === session) {
          session.control = null;
          void this.#clientGone(session, cause);
        }
      },
    };
  }

  /**
   * The control stream ended without /cancel (timeout or ENet disconnect): Moonlight's "Resume" needs the app
   * kept, so media stops but the session stays (serverinfo says BUSY with its app) for the grace period.
   */
  async #clientGone(session: ActiveSession, cause: string): Promise<void> {
    const graceMs = this.options.resumeGraceMs ?? 0;
    const appId = session.request.appId ?? DESKTOP_APP_ID;
    // Every cause counts (the control server reports its idle timeout as "local" too): a close the host made
    // itself never gets here, because stopSession drops the session before closing the control stream.
    if (graceMs <= 0 || appId === 0) {
      await this.stopSession(`control stream closed (${cause})`);
      return;
    }
    const timer = setTimeout(() => {
      if (this.#session === session) void this.stopSession("resume grace period over");
    }, graceMs);
    session.suspended = { sinceMs: Date.now(), timer };
    session.watch?.stop();
    session.watch = null;
    this.options.log.info("GameStream client gone; session kept for resume", {
      cause,
      app: appId,
      grace_s: graceMs / 1000,
    });
    const video = session.video;
    const audio = session.audio;
    session.video = null;
    session.audio = null;
    await Promise.all([video?.close(), audio?.close()]);
  }

  #onControlMessage(session: ActiveSession, type: number, payload: Uint8Array): void {
    const message = decodeClientMessage(type, payload);
    switch (message.kind) {
      case "idr_request":
      case "invalidate_refs": // no encoder here supports RFI, so invalidation becomes an IDR (as Sunshine does)
        session.idrRequests++;
        session.video?.requestIdr();
        return;
      case "fec_status":
        session.fec[classifyFecStatus(message)]++;
        return;
      case "start_b":
        // The client is ready for host messages: tell it the stream's dynamic range (always SDR here: no
        // 10-bit encoder is offered), as Sunshine does once the video stream starts.
        session.control?.send(CONTROL_TYPE.HDR_MODE, hdrModePayload(false));
        return;
      case "input":
        this.#inputEvents++;
        this.options.input.inject(message.event);
        return;
      case "malformed":
        this.options.log.debug("malformed control message dropped", { type, reason: message.reason });
        return;
      default:
        return;
    }
  }
}

/** Sunshine's Opus bitrates (§8.5). */
function audioBitrate(channels: 2 | 6 | 8, highQuality: boolean): number {
  const table = { 2: [96_000, 512_000], 6: [256_000, 1_536_000], 8: [450_000, 2_048_000] } as const;
  return table[channels][highQuality ? 1 : 0];
}
