/**
 * The only module that touches `Deno.dlopen`: it declares every `pf_*` symbol of the native core
 * and wraps them in `NativeCore`. Calls cross per session or per frame, never per packet; calls
 * that may block (probing encoders) are `nonblocking` and return JSON, because the thread-local
 * `pf_last_error` is only meaningful for synchronous calls made from the JS thread.
 */
import type { LogRecord } from "./log.ts";

/** The ABI version this TypeScript expects; a different library is refused at load. */
export const EXPECTED_ABI_VERSION = 1;

export const SETUP_COMMAND = "sh packaging/bootstrap.sh test";

export const STATUS = {
  OK: 0,
  INVALID_ARGUMENT: -1,
  NOT_FOUND: -2,
  UNSUPPORTED: -3,
  IO: -4,
  PANIC: -5,
  BUFFER_TOO_SMALL: -6,
  INTERNAL: -7,
} as const;

const SYMBOLS = {
  pf_abi_version: { parameters: [], result: "u32" },
  pf_last_error: { parameters: ["buffer", "usize"], result: "usize" },
  pf_log_set_level: { parameters: ["u32"], result: "i32" },
  pf_log_drain: { parameters: ["buffer", "usize"], result: "isize" },
  pf_debug_panic: { parameters: [], result: "i32" },
  pf_probe_encoders_json: { parameters: ["u32", "u32"], result: "pointer", nonblocking: true },
  pf_string_free: { parameters: ["pointer"], result: "void" },
  pf_video_sender_start: {
    parameters: ["buffer", "usize", "buffer", "usize"],
    result: "pointer",
    nonblocking: true,
  },
  pf_video_sender_request_idr: { parameters: ["pointer"], result: "i32" },
  pf_video_sender_set_bitrate: { parameters: ["pointer", "u32"], result: "i32" },
  pf_video_sender_is_finished: { parameters: ["pointer"], result: "i32" },
  pf_video_sender_stats_json: { parameters: ["pointer"], result: "pointer" },
  pf_video_sender_poll_events: { parameters: ["pointer", "buffer", "usize"], result: "isize" },
  pf_video_sender_stop: { parameters: ["pointer"], result: "void", nonblocking: true },
  pf_video_receiver_start: {
    parameters: ["buffer", "usize", "buffer", "usize"],
    result: "pointer",
    nonblocking: true,
  },
  pf_video_receiver_port: { parameters: ["pointer"], result: "u16" },
  pf_video_receiver_stats_json: { parameters: ["pointer"], result: "pointer" },
  pf_video_receiver_poll_events: { parameters: ["pointer", "buffer", "usize"], result: "isize" },
  pf_video_receiver_stop: { parameters: ["pointer"], result: "void", nonblocking: true },
  pf_bench_json: { parameters: ["buffer", "usize"], result: "pointer", nonblocking: true },
  pf_gs_audio_sender_start: {
    parameters: ["buffer", "usize", "buffer", "usize"],
    result: "pointer",
    nonblocking: true,
  },
  pf_gs_video_receiver_start: {
    parameters: ["buffer", "usize", "buffer", "usize"],
    result: "pointer",
    nonblocking: true,
  },
  pf_gs_audio_receiver_start: {
    parameters: ["buffer", "usize", "buffer", "usize"],
    result: "pointer",
    nonblocking: true,
  },
  pf_media_session_port: { parameters: ["pointer"], result: "u16" },
  pf_media_session_is_finished: { parameters: ["pointer"], result: "i32" },
  pf_media_session_stats_json: { parameters: ["pointer"], result: "pointer" },
  pf_media_session_poll_events: { parameters: ["pointer", "buffer", "usize"], result: "isize" },
  pf_media_session_stop: { parameters: ["pointer"], result: "void", nonblocking: true },
  pf_input_x11_open: {
    parameters: ["buffer", "usize", "buffer", "usize"],
    result: "pointer",
    nonblocking: true,
  },
  pf_input_x11_inject: { parameters: ["pointer", "buffer", "usize"], result: "i32" },
  pf_input_x11_screen_size: { parameters: ["pointer", "buffer"], result: "i32" },
  pf_input_x11_pointer: { parameters: ["pointer", "buffer"], result: "i32" },
  pf_input_x11_close: { parameters: ["pointer"], result: "void" },
  pf_capture_x11_probe: {
    parameters: ["buffer", "usize", "buffer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

export type Codec = "h264" | "h265" | "av1";
export type EncoderBackend = "nvenc" | "vaapi" | "software";

export interface EncoderProbe {
  codec: "h264" | "hevc" | "av1";
  backend: EncoderBackend;
  encoder: string;
  available: boolean;
  reason: string | null;
}

export interface EncoderProbeReport {
  width: number;
  height: number;
  encoders: EncoderProbe[];
}

export class NativeError extends Error {
  override name = "NativeError";
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export class NativeLibraryMissingError extends Error {
  override name = "NativeLibraryMissingError";
}

export function defaultLibraryPath(env: Record<string, string | undefined> = Deno.env.toObject()): string {
  if (env.PUNKTFUNK_NATIVE_LIB) return env.PUNKTFUNK_NATIVE_LIB;
  // Under `deno compile` this URL points into the embedded file system (packaging/compile.sh
  // includes the library), and Deno extracts it to a temp file on dlopen.
  return new URL("../native-core/target/release/libpunktfunk_native.so", import.meta.url).pathname;
}

const LEVEL_NUMBERS = { off: 0, error: 1, warn: 2, info: 3, debug: 4, trace: 5 } as const;
const decoder = new TextDecoder();

/** `symbols` with each function wrapped to call `onCall` first: the one place FFI crossings are counted. */
function countingSymbols(symbols: Symbols, onCall: () => void): Symbols {
  const counted: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(symbols)) {
    counted[name] = (...args: unknown[]) => {
      onCall();
      return (fn as (...args: unknown[]) => unknown)(...args);
    };
  }
  return counted as Symbols;
}

export class NativeCore {
  readonly #lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  readonly abiVersion: number;
  #closed = false;
  #logBuffer = new Uint8Array(64 * 1024);
  /** `#lib.symbols` with every call counted in `ffiCalls` (session handles get this object too). */
  readonly #counted: Symbols;

  private constructor(lib: Deno.DynamicLibrary<typeof SYMBOLS>, abiVersion: number) {
    this.#lib = lib;
    this.#counted = countingSymbols(lib.symbols, () => this.ffiCalls++);
    this.abiVersion = abiVersion;
  }

  static open(path: string = defaultLibraryPath()): NativeCore {
    // SVT-AV1 prints straight to stderr (bypassing av_log); level 1 keeps only its errors, so the
    // host's stderr stays parseable JSON lines. Set before any encoder exists.
    if (Deno.env.get("SVT_LOG") === undefined) Deno.env.set("SVT_LOG", "1");
    let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
    try {
      lib = Deno.dlopen(path, SYMBOLS);
    } catch (error) {
      throw new NativeLibraryMissingError(
        `cannot load the native core ${path}: ${(error as Error).message}. ` +
          `Build it with \`${SETUP_COMMAND}\` (or set PUNKTFUNK_NATIVE_LIB).`,
      );
    }
    const abiVersion = lib.symbols.pf_abi_version();
    if (abiVersion !== EXPECTED_ABI_VERSION) {
      lib.close();
      throw new NativeLibraryMissingError(
        `native core ${path} has ABI version ${abiVersion}, this build needs ${EXPECTED_ABI_VERSION}; ` +
          `rebuild it with \`${SETUP_COMMAND}\``,
      );
    }
    return new NativeCore(lib, abiVersion);
  }

  #symbols(): Symbols {
    if (this.#closed) throw new Error("native core is closed");
    return this.#counted;
  }

  /** The message of the last failed synchronous call on this (the JS) thread. */
  lastError(): string {
    const symbols = this.#symbols();
    const length = Number(symbols.pf_last_error(null, 0n));
    if (length === 0) return "";
    const buffer = new Uint8Array(length);
    symbols.pf_last_error(buffer, BigInt(length));
    return decoder.decode(buffer);
  }

  #check(status: number): void {
    if (status < 0) throw new NativeError(status, this.lastError() || `native call failed (${status})`);
  }

  setLogLevel(level: keyof typeof LEVEL_NUMBERS): void {
    this.#check(this.#symbols().pf_log_set_level(LEVEL_NUMBERS[level]));
  }

  /** Takes every queued native log record; one FFI call per buffer-full, none per line. */
  drainLogs(): LogRecord[] {
    const records: LogRecord[] = [];
    for (;;) {
      const written = Number(this.#symbols().pf_log_drain(this.#logBuffer, BigInt(this.#logBuffer.length)));
      if (written === STATUS.BUFFER_TOO_SMALL) {
        this.#logBuffer = new Uint8Array(this.#logBuffer.length * 2);
        continue;
      }
      this.#check(written);
      if (written === 0) return records;
      for (const line of decoder.decode(this.#logBuffer.subarray(0, written)).split("\n")) {
        if (line) records.push(parseNativeLogLine(line));
      }
    }
  }

  /** Test hook: makes the library panic inside an export; returns the resulting error. */
  debugPanic(): NativeError {
    const status = this.#symbols().pf_debug_panic();
    return new NativeError(status, this.lastError());
  }

  /** Opens each candidate encoder at width×height (off the JS thread) and reports why not. */
  async probeEncoders(width = 1280, height = 720): Promise<EncoderProbeReport> {
    const symbols = this.#symbols();
    const pointer = await symbols.pf_probe_encoders_json(width, height);
    if (pointer === null) {
      throw new NativeError(STATUS.INVALID_ARGUMENT, `encoder probe refused ${width}x${height}`);
    }
    try {
      return JSON.parse(new Deno.UnsafePointerView(pointer).getCString()) as EncoderProbeReport;
    } finally {
      symbols.pf_string_free(pointer);
    }
  }

  /**
   * Every FFI crossing made through this core and the handles it created, counted where the symbols are
   * called (string frees, log drains and error reads included); tests prove none happens per packet.
   */
  ffiCalls = 0;

  #takeString(pointer: Deno.PointerValue): string | null {
    if (pointer === null) return null;
    try {
      return new Deno.UnsafePointerView(pointer).getCString();
    } finally {
      this.#symbols().pf_string_free(pointer);
    }
  }

  async #startSession(
    start: (json: Uint8Array, len: bigint, err: Uint8Array, cap: bigint) => Promise<Deno.PointerValue>,
    config: object,
    what: string,
  ): Promise<Deno.PointerObject> {
    const json = new TextEncoder().encode(JSON.stringify(config));
    const error = new Uint8Array(1024);
    const handle = await start(json, BigInt(json.length), error, BigInt(error.length));
    if (handle === null) {
      const end = error.indexOf(0);
      throw new NativeError(
        STATUS.INVALID_ARGUMENT,
        `${what}: ${decoder.decode(error.subarray(0, end < 0 ? 0 : end))}`,
      );
    }
    return handle;
  }

  /** Starts a video session (capture → encode → FEC → seal → paced send) on native threads. */
  async startVideoSender(config: VideoSenderConfig): Promise<VideoSenderHandle> {
    const symbols = this.#symbols();
    const handle = await this.#startSession(symbols.pf_video_sender_start, config, "video sender");
    return new VideoSenderHandle(this, handle, symbols, (p) => this.#takeString(p));
  }

  /** Starts a video receiver (our client's data plane) on a native thread. */
  async startVideoReceiver(config: VideoReceiverConfig): Promise<VideoReceiverHandle> {
    const symbols = this.#symbols();
    const handle = await this.#startSession(symbols.pf_video_receiver_start, config, "video receiver");
    return new VideoReceiverHandle(this, handle, symbols, (p) => this.#takeString(p));
  }

  /** GameStream audio (host): source → Opus → RTP/FEC (+AES-CBC) to whoever pings `bind` first. */
  async startGameStreamAudioSender(config: GameStreamAudioSenderConfig): Promise<MediaSessionHandle> {
    const symbols = this.#symbols();
    const handle = await this.#startSession(symbols.pf_gs_audio_sender_start, config, "audio sender");
    return new MediaSessionHandle(this, handle, symbols, (p) => this.#takeString(p), "audio sender");
  }

  /** GameStream video as Moonlight receives it (test client): ping, depacketize, FEC, decode. */
  async startGameStreamVideoReceiver(config: GameStreamVideoReceiverConfig): Promise<MediaSessionHandle> {
    const symbols = this.#symbols();
    const handle = await this.#startSession(symbols.pf_gs_video_receiver_start, config, "video receiver");
    return new MediaSessionHandle(this, handle, symbols, (p) => this.#takeString(p), "video receiver");
  }

  /** GameStream audio as Moonlight receives it (test client): ping, FEC, decrypt, Opus decode. */
  async startGameStreamAudioReceiver(config: GameStreamAudioReceiverConfig): Promise<MediaSessionHandle> {
    const symbols = this.#symbols();
    const handle = await this.#startSession(symbols.pf_gs_audio_receiver_start, config, "audio receiver");
    return new MediaSessionHandle(this, handle, symbols, (p) => this.#takeString(p), "audio receiver");
  }

  /** Runs one in-process benchmark (off the JS thread); returns its JSON result. */
  async bench(name: string): Promise<Record<string, unknown>> {
    const bytes = new TextEncoder().encode(name);
    const text = this.#takeString(await this.#symbols().pf_bench_json(bytes, BigInt(bytes.length)));
    if (text === null) throw new NativeError(STATUS.INVALID_ARGUMENT, `unknown benchmark "${name}"`);
    return JSON.parse(text);
  }

  /** Connects an XTEST input injector to X display `display` (e.g. ":99"), off the JS thread. */
  async openX11Input(display: string): Promise<X11InputInjectorHandle> {
    const symbols = this.#symbols();
    const name = new TextEncoder().encode(display);
    const error = new Uint8Array(1024);
    const handle = await symbols.pf_input_x11_open(name, BigInt(name.length), error, BigInt(error.length));
    if (handle === null) {
      const end = error.indexOf(0);
      throw new NativeError(
        STATUS.UNSUPPORTED,
        `X11 input on ${display}: ${decoder.decode(error.subarray(0, end < 0 ? 0 : end))}`,
      );
    }
    return new X11InputInjectorHandle(this, handle, symbols);
  }

  /**
   * Opens X display `display` (off the JS thread) and checks what MIT-SHM capture needs; the screen size,
   * or a NativeError with the reason. Used by selftest; sessions open their own connection.
   */
  async probeX11Capture(display: string): Promise<{ width: number; height: number }> {
    const name = new TextEncoder().encode(display);
    const size = new Uint32Array(2);
    const error = new Uint8Array(1024);
    const status = await this.#symbols().pf_capture_x11_probe(
      name,
      BigInt(name.length),
      size,
      error,
      BigInt(error.length),
    );
    if (status !== STATUS.OK) {
      const end = error.indexOf(0);
      throw new NativeError(status, decoder.decode(error.subarray(0, end < 0 ? 0 : end)));
    }
    return { width: size[0], height: size[1] };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#lib.close();
  }
}

const NATIVE_LEVELS = new Set(["error", "warn", "info", "debug", "trace"]);

export function parseNativeLogLine(line: string): LogRecord {
  try {
    const value = JSON.parse(line) as { t_ms?: number; level?: string; target?: string; msg?: string };
    const level = NATIVE_LEVELS.has(value.level ?? "") ? value.level as LogRecord["level"] : "info";
    return {
      timeMs: typeof value.t_ms === "number" ? value.t_ms : Date.now(),
      level,
      target: `native::${value.target ?? "core"}`,
      msg: String(value.msg ?? ""),
    };
  } catch {
    return { timeMs: Date.now(), level: "warn", target: "native", msg: `unparsable native log: ${line}` };
  }
}

/** Codecs for which at least one encoder opened, in the management API's naming. */
export function availableCodecs(report: EncoderProbeReport): Codec[] {
  const names: Record<EncoderProbe["codec"], Codec> = { h264: "h264", hevc: "h265", av1: "av1" };
  const codecs = new Set<Codec>();
  for (const probe of report.encoders) if (probe.available) codecs.add(names[probe.codec]);
  return (["h264", "h265", "av1"] as const).filter((codec) => codecs.has(codec));
}

export interface VideoSenderConfig {
  source?: { kind: "synthetic" } | { kind: "x11"; display: string };
  width?: number;
  height?: number;
  fps?: number;
  codec?: "h264" | "hevc" | "av1";
  encoder?: string;
  bitrate_kbps?: number;
  cbr_filler?: boolean;
  fec?: {
    scheme?: "none" | "gf8" | "gf16";
    percent?: number;
    min_parity?: number;
    max_data_per_block?: number;
  };
  shard_bytes?: number;
  /** 32 hex digits, never all zero. */
  key: string;
  /** punktfunk/1: 8 hex digits. */
  salt?: string;
  /** punktfunk/1: where to send. */
  destination?: string;
  /** GameStream wire instead: the destination is learned from the client's ping on `bind`. */
  gamestream?: {
    packet_size: number;
    min_required_fec?: number;
    encrypt?: boolean;
    ping_payload?: string;
    /** The session owner's IP (the address that launched it): only its pings bind the stream. */
    client_ip?: string;
    ping_timeout_ms?: number;
  };
  bind?: string;
  pacing_multiplier?: number;
  loss_ppm?: number;
  loss_seed?: number;
  max_frames?: number;
  /** TEST FAULT INJECTION: deliberate failures (tests only; see `VideoFaultInjection`). */
  fault?: VideoFaultInjection;
}

/**
 * TEST FAULT INJECTION for a video sender (native-core/src/pipeline/config.rs `FaultInjection`); counts are frames
 * the session encoded. Proves the session watch and the encoder fallback; never set by production paths.
 */
export interface VideoFaultInjection {
  /** The encoder fails once at this frame (as a libav error would); the next encoder of the chain takes over. */
  fail_encoder_after_frames?: number;
  /** The encode thread panics at this frame: the worker dies and the session must end. */
  kill_worker_after_frames?: number;
}

export interface VideoReceiverConfig {
  bind?: string;
  key: string;
  salt: string;
  decode?: "none" | "h264" | "hevc" | "av1";
  verify_stamps?: boolean;
}

/** Opus multistream layout (GameStream surround params); stereo when omitted. */
export interface OpusLayoutConfig {
  channels?: 2 | 6 | 8;
  streams?: number;
  coupled_streams?: number;
  mapping?: number[];
  packet_duration_ms?: 5 | 10 | 20;
}

/** GameStream audio crypto: AES-CBC with IV from `rikeyid` (+ RTP sequence). */
export interface GameStreamAudioCrypto {
  encrypt?: boolean;
  key?: string;
  rikeyid?: number;
}

export interface GameStreamAudioSenderConfig extends OpusLayoutConfig, GameStreamAudioCrypto {
  source?: { kind: "tone" } | { kind: "pulse"; server?: string; device?: string };
  bitrate_bps?: number;
  bind: string;
  ping_payload?: string;
  /** The session owner's IP (the address that launched it): only its pings bind the stream. */
  client_ip?: string;
  ping_timeout_ms?: number;
  loss_ppm?: number;
}

interface GameStreamReceiverLink {
  /** The host's media port, IP:PORT. */
  host: string;
  bind?: string;
  ping_payload?: string;
  /** Receive-side loss injection (same effect as loss on the wire). */
  loss_ppm?: number;
  loss_seed?: number;
}

export interface GameStreamVideoReceiverConfig extends GameStreamReceiverLink {
  packet_size: number;
  encrypt?: boolean;
  key?: string;
  codec?: "h264" | "hevc" | "av1";
}

export interface GameStreamAudioReceiverConfig
  extends GameStreamReceiverLink, OpusLayoutConfig, GameStreamAudioCrypto {}

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
const EVENT_BUFFER_BYTES = 64 * 1024;

function pollEvents(
  poll: (handle: Deno.PointerObject, buf: Uint8Array, cap: bigint) => number | bigint,
  handle: Deno.PointerObject,
): Record<string, unknown>[] {
  const buffer = new Uint8Array(EVENT_BUFFER_BYTES);
  const written = Number(poll(handle, buffer, BigInt(buffer.length)));
  if (written <= 0) return [];
  return decoder.decode(buffer.subarray(0, written)).split("\n").filter(Boolean).map((line) =>
    JSON.parse(line)
  );
}

/** Shared plumbing of native session handles: liveness, FFI call counting, stats, events, stop. */
abstract class SessionHandle {
  #handle: Deno.PointerObject | null;
  constructor(
    readonly core: NativeCore,
    handle: Deno.PointerObject,
    protected readonly symbols: Symbols,
    private readonly takeString: (p: Deno.PointerValue) => string | null,
    private readonly kind: string,
  ) {
    this.#handle = handle;
  }

  protected live(): Deno.PointerObject {
    if (this.#handle === null) throw new Error(`${this.kind} is stopped`);
    return this.#handle;
  }

  protected abstract statsPointer(handle: Deno.PointerObject): Deno.PointerValue;
  protected abstract pollEvents(handle: Deno.PointerObject, buf: Uint8Array, cap: bigint): number | bigint;
  protected abstract stopNative(handle: Deno.PointerObject): Promise<void>;

  stats(): Record<string, unknown> {
    return JSON.parse(this.takeString(this.statsPointer(this.live())) ?? "{}");
  }

  events(): Record<string, unknown>[] {
    return pollEvents((h, b, c) => this.pollEvents(h, b, c), this.live());
  }

  /** Stops the native threads (off the JS thread) and frees the session; idempotent. */
  async close(): Promise<void> {
    if (this.#handle === null) return;
    const handle = this.#handle;
    this.#handle = null;
    await this.stopNative(handle);
  }
}

/** A running video session (capture → encode → FEC → seal → paced send). */
export class VideoSenderHandle extends SessionHandle {
  constructor(
    core: NativeCore,
    handle: Deno.PointerObject,
    symbols: Symbols,
    take: (p: Deno.PointerValue) => string | null,
  ) {
    super(core, handle, symbols, take, "video sender");
  }

  protected statsPointer(handle: Deno.PointerObject): Deno.PointerValue {
    return this.symbols.pf_video_sender_stats_json(handle);
  }
  protected pollEvents(handle: Deno.PointerObject, buf: Uint8Array, cap: bigint): number | bigint {
    return this.symbols.pf_video_sender_poll_events(handle, buf, cap);
  }
  protected stopNative(handle: Deno.PointerObject): Promise<void> {
    return this.symbols.pf_video_sender_stop(handle);
  }

  requestIdr(): void {
    this.symbols.pf_video_sender_request_idr(this.live());
  }

  setBitrate(kbps: number): void {
    const status = this.symbols.pf_video_sender_set_bitrate(this.live(), kbps);
    if (status !== STATUS.OK) throw new NativeError(status, `bitrate ${kbps} kbit/s refused`);
  }

  get finished(): boolean {
    return this.symbols.pf_video_sender_is_finished(this.live()) === 1;
  }
}

/** A running receiver (our client's data plane). */
export class VideoReceiverHandle extends SessionHandle {
  constructor(
    core: NativeCore,
    handle: Deno.PointerObject,
    symbols: Symbols,
    take: (p: Deno.PointerValue) => string | null,
  ) {
    super(core, handle, symbols, take, "video receiver");
  }

  protected statsPointer(handle: Deno.PointerObject): Deno.PointerValue {
    return this.symbols.pf_video_receiver_stats_json(handle);
  }
  protected pollEvents(handle: Deno.PointerObject, buf: Uint8Array, cap: bigint): number | bigint {
    return this.symbols.pf_video_receiver_poll_events(handle, buf, cap);
  }
  protected stopNative(handle: Deno.PointerObject): Promise<void> {
    return this.symbols.pf_video_receiver_stop(handle);
  }

  get port(): number {
    return this.symbols.pf_video_receiver_port(this.live());
  }
}

/** A single-thread native session: GameStream audio sender, or a test-client receiver. */
export class MediaSessionHandle extends SessionHandle {
  constructor(
    core: NativeCore,
    handle: Deno.PointerObject,
    symbols: Symbols,
    take: (p: Deno.PointerValue) => string | null,
    kind: string,
  ) {
    super(core, handle, symbols, take, kind);
  }

  protected statsPointer(handle: Deno.PointerObject): Deno.PointerValue {
    return this.symbols.pf_media_session_stats_json(handle);
  }
  protected pollEvents(handle: Deno.PointerObject, buf: Uint8Array, cap: bigint): number | bigint {
    return this.symbols.pf_media_session_poll_events(handle, buf, cap);
  }
  protected stopNative(handle: Deno.PointerObject): Promise<void> {
    return this.symbols.pf_media_session_stop(handle);
  }

  get port(): number {
    return this.symbols.pf_media_session_port(this.live());
  }

  get finished(): boolean {
    return this.symbols.pf_media_session_is_finished(this.live()) === 1;
  }
}

/** One input event for a native injector; pointer positions are screen pixels, scroll is 1/120 notches. */
export type NativeInputEvent =
  | { kind: "key"; /** X keysym, e.g. 0x61 for "a". */ keysym: number; down: boolean }
  | { kind: "mouse_abs"; x: number; y: number }
  | { kind: "mouse_rel"; dx: number; dy: number }
  | { kind: "button"; /** 1 left, 2 middle, 3 right, 4 X1, 5 X2. */ button: number; down: boolean }
  | { kind: "scroll"; /** positive: up */ vertical: number; /** positive: right */ horizontal: number };

/** Size of the binary event `pf_input_x11_inject` takes. */
export const NATIVE_INPUT_EVENT_BYTES = 16;
const INPUT_KINDS = { key: 1, mouse_abs: 2, mouse_rel: 3, button: 4, scroll: 5 } as const;

function int32(value: number, what: string): number {
  if (!Number.isInteger(value) || value < -0x8000_0000 || value > 0x7fff_ffff) {
    throw new RangeError(`${what} ${value} is not a 32-bit integer`);
  }
  return value;
}

/**
 * The 16-byte little-endian form (native-core/src/abi_input.rs): u8 kind, u8 down, u16 reserved,
 * then key: u32 keysym | mouse_abs: i32 x, i32 y | mouse_rel: i32 dx, i32 dy | button: u8 |
 * scroll: i32 vertical, i32 horizontal.
 */
export function encodeNativeInputEvent(event: NativeInputEvent): Uint8Array {
  const bytes = new Uint8Array(NATIVE_INPUT_EVENT_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, INPUT_KINDS[event.kind]);
  switch (event.kind) {
    case "key":
      if (!Number.isInteger(event.keysym) || event.keysym < 0 || event.keysym > 0xffff_ffff) {
        throw new RangeError(`keysym ${event.keysym} is not a 32-bit unsigned integer`);
      }
      view.setUint8(1, event.down ? 1 : 0);
      view.setUint32(4, event.keysym, true);
      break;
    case "mouse_abs":
      view.setInt32(4, int32(event.x, "x"), true);
      view.setInt32(8, int32(event.y, "y"), true);
      break;
    case "mouse_rel":
      view.setInt32(4, int32(event.dx, "dx"), true);
      view.setInt32(8, int32(event.dy, "dy"), true);
      break;
    case "button":
      if (!Number.isInteger(event.button) || event.button < 0 || event.button > 255) {
        throw new RangeError(`button ${event.button} is not a byte`);
      }
      view.setUint8(1, event.down ? 1 : 0);
      view.setUint8(4, event.button);
      break;
    case "scroll":
      view.setInt32(4, int32(event.vertical, "vertical scroll"), true);
      view.setInt32(8, int32(event.horizontal, "horizontal scroll"), true);
      break;
  }
  return bytes;
}

/**
 * An XTEST input injector on one X display (from `NativeCore.openX11Input`). Each call is one
 * synchronous FFI crossing that sends the event and flushes (no round trip); a server error caused
 * by one event is reported by a later call. Not for use after `NativeCore.close()`.
 */
export class X11InputInjectorHandle {
  #handle: Deno.PointerObject | null;
  readonly #size = new Uint32Array(2);
  readonly #pointer = new Int32Array(3);

  constructor(readonly core: NativeCore, handle: Deno.PointerObject, private readonly symbols: Symbols) {
    this.#handle = handle;
  }

  #live(): Deno.PointerObject {
    if (this.#handle === null) throw new Error("X11 input injector is closed");
    return this.#handle;
  }

  #check(status: number, what: string): void {
    if (status !== STATUS.OK) {
      throw new NativeError(status, this.core.lastError() || `${what} failed (${status})`);
    }
  }

  /** Injects one event; a NativeError for malformed events, unmapped keysyms or X errors. */
  inject(event: NativeInputEvent): void {
    this.injectRaw(encodeNativeInputEvent(event));
  }

  /** Injects an already encoded event (`encodeNativeInputEvent`); the native side validates it. */
  injectRaw(bytes: Uint8Array): void {
    this.#check(
      this.symbols.pf_input_x11_inject(this.#live(), bytes, BigInt(bytes.length)),
      "input injection",
    );
  }

  /** The X screen's current size in pixels (one round trip to the server). */
  screenSize(): { width: number; height: number } {
    this.#check(this.symbols.pf_input_x11_screen_size(this.#live(), this.#size), "screen size query");
    return { width: this.#size[0], height: this.#size[1] };
  }

  /** The pointer's root position and X button mask (`Button1Mask` is 1 << 8), one round trip. */
  pointer(): { x: number; y: number; buttonMask: number } {
    this.#check(this.symbols.pf_input_x11_pointer(this.#live(), this.#pointer), "pointer query");
    return { x: this.#pointer[0], y: this.#pointer[1], buttonMask: this.#pointer[2] };
  }

  /** Closes the X connection; idempotent. */
  close(): void {
    if (this.#handle === null) return;
    const handle = this.#handle;
    this.#handle = null;
    this.symbols.pf_input_x11_close(handle);
  }
}
