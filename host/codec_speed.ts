/**
 * Which video codecs the host advertises, decided by how fast their encoders really are here.
 *
 * Moonlight takes the best codec both sides advertise (AV1 > HEVC > H.264), so advertising a codec
 * whose encoder cannot hold the mode gives the client a slow, laggy stream where H.264 would have
 * been smooth. The native core measures the encoder a session would get (`encoder_speed:` benchmark,
 * `native-core/src/encode/speed.rs`); results are cached in the state DB per encoder, encoder
 * libraries, CPU model and core count. The decision itself is pure (`decideCodecs`):
 *
 * - H.264 is always advertised when an encoder opens: it is the baseline every Moonlight decodes.
 * - A codec whose session encoder is hardware is advertised (hardware encoders stay first in the
 *   chain and keep up with any mode the GameStream client can ask of them).
 * - A codec whose session encoder is software is advertised only when a measurement at the reference
 *   mode says it holds it (`holdsMode`), or when the operator allows slow codecs explicitly.
 *
 * Serverinfo comes before the client says which mode it wants, so the decision is made for one
 * reference mode, `ADVERTISE_MODE`.
 */
import type { EncoderProbeReport, NativeCore } from "./native_abi.ts";
import type { StateDb } from "./state_db.ts";
import type { Logger } from "./log.ts";

export type VideoCodec = "h264" | "hevc" | "av1";
export const VIDEO_CODECS: readonly VideoCodec[] = ["h264", "hevc", "av1"];

export interface SpeedMode {
  width: number;
  height: number;
  fps: number;
}

/**
 * The mode advertising is decided for: 1280x720@60, the mode the acceptance names and the
 * GameStream tests stream. A client asking for more with a codec that only holds this gets fewer
 * frames; `selftest` shows the figures for 1080p60 too.
 */
export const ADVERTISE_MODE: SpeedMode = { width: 1280, height: 720, fps: 60 };

/** The modes `selftest` reports. */
export const SELFTEST_MODES: readonly SpeedMode[] = [ADVERTISE_MODE, { width: 1920, height: 1080, fps: 60 }];

/** One measurement, as the native `encoder_speed:` benchmark reports it. */
export interface EncoderSpeed {
  codec: VideoCodec;
  width: number;
  height: number;
  fps: number;
  encoder: string;
  backend: "nvenc" | "vaapi" | "software";
  speed: string;
  throughput_fps: number;
  paced_fps: number;
  latency_ms: { p50: number; p90: number; max: number };
  frames_held: number;
  cpu_ms_per_frame: number;
  frames: number;
  /** A phase stopped at its time cap: the encoder is far too slow for the mode. */
  truncated?: boolean;
}

/** A measurement with when and under what load it was taken. */
export interface MeasuredSpeed {
  result: EncoderSpeed;
  measuredAtUnix: number;
  /** 1-minute load average when it was taken (other work on the machine slows every figure). */
  load1: number;
}

/**
 * Back-to-back encode rate must exceed the mode's rate by 10 %: the encoder is not the only
 * per-frame work (desktop capture and colour conversion, FEC, encryption, pacing, Opus audio share
 * the cores), and runs on a shared machine vary by about that much.
 */
export const THROUGHPUT_HEADROOM = 1.1;
/** At the requested pace at least 97 % of the frames must come out: 58 of 60 (the acceptance). */
export const PACED_FPS_FLOOR = 0.97;
/**
 * Due → packet at the 90th percentile within 1.5 frame intervals: the host's latency budget is two
 * intervals (capture to last packet sent), and pacing a frame's packets out takes up to half an
 * interval after the encoder returns it.
 */
export const LATENCY_BUDGET_INTERVALS = 1.5;

/** Whether a measurement says its encoder holds its mode, with the figures that decided it. */
export function holdsMode(speed: EncoderSpeed): { holds: boolean; reason: string } {
  const intervalMs = 1000 / speed.fps;
  const failures: string[] = [];
  if (speed.throughput_fps < speed.fps * THROUGHPUT_HEADROOM) {
    failures.push(
      `encodes at most ${speed.throughput_fps.toFixed(1)} fps (needs ${THROUGHPUT_HEADROOM}× ${speed.fps})`,
    );
  }
  if (speed.paced_fps < speed.fps * PACED_FPS_FLOOR) {
    failures.push(`delivers ${speed.paced_fps.toFixed(1)} fps at the requested pace`);
  }
  const budget = intervalMs * LATENCY_BUDGET_INTERVALS;
  if (speed.latency_ms.p90 > budget) {
    const held = speed.frames_held > 0 ? `, holds ${speed.frames_held} frame(s)` : "";
    failures.push(`latency p90 ${speed.latency_ms.p90.toFixed(1)} ms > ${budget.toFixed(1)} ms${held}`);
  }
  const figures = `${speed.throughput_fps.toFixed(1)} fps max, p90 ${speed.latency_ms.p90.toFixed(1)} ms`;
  return failures.length === 0
    ? { holds: true, reason: `holds ${modeName(speed)} (${figures})` }
    : { holds: false, reason: `cannot hold ${modeName(speed)}: ${failures.join("; ")}` };
}

export function modeName(mode: SpeedMode): string {
  return `${mode.width}x${mode.height}@${mode.fps}`;
}

/** The encoder a session would get for `codec`: the first that opened, in the probe's order. */
export function sessionEncoder(
  probe: EncoderProbeReport,
  codec: VideoCodec,
): { encoder: string; backend: string } | null {
  const found = probe.encoders.find((e) => e.codec === codec && e.available);
  return found ? { encoder: found.encoder, backend: found.backend } : null;
}

export interface CodecDecision {
  codec: VideoCodec;
  advertised: boolean;
  /** The session's encoder, or null when none opened. */
  encoder: string | null;
  reason: string;
  /** True when the codec is advertised although its measurement says it cannot keep up. */
  slow: boolean;
}

/** The advertising decision (see the module docs). `speeds` holds measurements at `mode`. */
export function decideCodecs(input: {
  probe: EncoderProbeReport;
  speeds: ReadonlyMap<VideoCodec, MeasuredSpeed>;
  mode: SpeedMode;
  allowSlow: boolean;
}): CodecDecision[] {
  return VIDEO_CODECS.map((codec): CodecDecision => {
    const chosen = sessionEncoder(input.probe, codec);
    if (!chosen) return { codec, advertised: false, encoder: null, reason: "no encoder opens", slow: false };
    const base = { codec, encoder: chosen.encoder };
    if (codec === "h264") {
      return { ...base, advertised: true, slow: false, reason: "baseline codec, always advertised" };
    }
    if (chosen.backend !== "software") {
      return { ...base, advertised: true, slow: false, reason: `hardware encoder (${chosen.backend})` };
    }
    const measured = input.speeds.get(codec);
    const matching = measured && measured.result.encoder === chosen.encoder &&
      measured.result.width === input.mode.width && measured.result.height === input.mode.height &&
      measured.result.fps === input.mode.fps;
    if (!matching) {
      return input.allowSlow
        ? { ...base, advertised: true, slow: true, reason: "not measured; slow codecs allowed by setting" }
        : { ...base, advertised: false, slow: false, reason: `not measured at ${modeName(input.mode)} yet` };
    }
    const verdict = holdsMode(measured.result);
    if (verdict.holds) return { ...base, advertised: true, slow: false, reason: verdict.reason };
    return input.allowSlow
      ? {
        ...base,
        advertised: true,
        slow: true,
        reason: `${verdict.reason}; advertised: slow codecs allowed`,
      }
      : { ...base, advertised: false, slow: false, reason: verdict.reason };
  });
}

/** What identifies "the same encoder on the same machine" for the cache. */
export interface MachineKey {
  /** Encoder libraries as `name@size@mtime`, sorted: an upgrade in place changes size or mtime. */
  libraries: string;
  cpuModel: string;
  cores: number;
}

/** Libraries whose code decides encoder speed, matched by file name in /proc/self/maps. */
const ENCODER_LIBRARY = /\/(lib(?:avcodec|swscale|x264|x265|SvtAv1Enc|aom|va|cuda)\.so[.\d]*)$/;

/** Paths of the encoder libraries mapped into this process (`/proc/self/maps` text), unique, sorted. */
export function parseEncoderLibraries(maps: string): string[] {
  const paths = new Set<string>();
  for (const line of maps.split("\n")) {
    // address perms offset dev inode path — the path is everything after the fifth field.
    const path = line.trim().split(/\s+/).slice(5).join(" ");
    if (ENCODER_LIBRARY.test(path)) paths.add(path);
  }
  return [...paths].sort();
}

/** The first "model name" of /proc/cpuinfo, or "unknown". */
export function parseCpuModel(cpuinfo: string): string {
  const match = /^model name\s*:\s*(.+)$/m.exec(cpuinfo);
  return match ? match[1].trim() : "unknown";
}

/** The 1-minute load average from /proc/loadavg text (NaN when unreadable). */
export function parseLoad1(loadavg: string): number {
  const field = loadavg.trim().split(/\s+/)[0];
  return /^\d+(?:\.\d+)?$/.test(field) ? Number(field) : NaN;
}

function readOr(path: string, fallback: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return fallback;
  }
}

/** This process's machine key (call after the native core is loaded: its libraries must be mapped). */
export function currentMachineKey(): MachineKey {
  const libraries = parseEncoderLibraries(readOr("/proc/self/maps", "")).map((path) => {
    const name = path.slice(path.lastIndexOf("/") + 1);
    try {
      const info = Deno.statSync(path);
      return `${name}@${info.size}@${info.mtime?.getTime() ?? 0}`;
    } catch {
      return name;
    }
  });
  return {
    libraries: libraries.join(",") || "unknown",
    cpuModel: parseCpuModel(readOr("/proc/cpuinfo", "")),
    cores: navigator.hardwareConcurrency,
  };
}

export function currentLoad1(): number {
  return parseLoad1(readOr("/proc/loadavg", "NaN"));
}

/**
 * A cached measurement taken while the machine had more runnable work than cores is used, but taken
 * again at the next start: it understates what the encoder does on a quiet machine.
 */
export function measuredUnderLoad(measured: MeasuredSpeed, cores: number): boolean {
  return !(measured.load1 <= cores);
}

/** The `encoder_speed` table (state DB migration 2). */
export class SpeedCache {
  constructor(private readonly db: StateDb, private readonly machine: MachineKey) {}

  get(codec: VideoCodec, encoder: string, mode: SpeedMode): MeasuredSpeed | undefined {
    const row = this.db.get<{ result: string; measured_at_unix: number; load_1min: number }>(
      `SELECT result, measured_at_unix, load_1min FROM encoder_speed
       WHERE codec = ? AND encoder = ? AND width = ? AND height = ? AND fps = ?
         AND libraries = ? AND cpu_model = ? AND cores = ?`,
      codec,
      encoder,
      mode.width,
      mode.height,
      mode.fps,
      this.machine.libraries,
      this.machine.cpuModel,
      this.machine.cores,
    );
    if (!row) return undefined;
    try {
      return { result: JSON.parse(row.result), measuredAtUnix: row.measured_at_unix, load1: row.load_1min };
    } catch {
      return undefined; // a row we cannot read is as good as none: it is measured again
    }
  }

  put(measured: MeasuredSpeed): void {
    const r = measured.result;
    this.db.transaction(() =>
      this.db.run(
        `INSERT OR REPLACE INTO encoder_speed
           (codec, encoder, width, height, fps, libraries, cpu_model, cores, result, load_1min, measured_at_unix)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        r.codec,
        r.encoder,
        r.width,
        r.height,
        r.fps,
        this.machine.libraries,
        this.machine.cpuModel,
        this.machine.cores,
        JSON.stringify(r),
        Number.isFinite(measured.load1) ? measured.load1 : -1,
        measured.measuredAtUnix,
      )
    );
  }
}

/** Runs the native measurement of `codec` at `mode` (off the JS thread: ~2 s at 720p60 on two cores). */
export async function measureSpeed(
  native: NativeCore,
  codec: VideoCodec,
  mode: SpeedMode,
): Promise<MeasuredSpeed> {
  const load1 = currentLoad1();
  const result = await native.bench(`encoder_speed:${codec}:${modeName(mode)}`) as unknown as EncoderSpeed;
  return { result, measuredAtUnix: Math.floor(Date.now() / 1000), load1: Math.max(load1, currentLoad1()) };
}

/**
 * The host's live advertising state: starts from the cache, measures what is missing in the
 * background, and exposes the current `CodecSupport` flags as getters so serverinfo and RTSP read the
 * latest decision on every request.
 */
export class CodecAdvertiser {
  #decisions: CodecDecision[];
  readonly #speeds = new Map<VideoCodec, MeasuredSpeed>();

  constructor(
    private readonly options: {
      native: NativeCore;
      cache: SpeedCache;
      probe: EncoderProbeReport;
      cores: number;
      allowSlow: boolean;
      log: Logger;
      mode?: SpeedMode;
    },
  ) {
    for (const codec of VIDEO_CODECS) {
      const chosen = sessionEncoder(options.probe, codec);
      if (!chosen) continue;
      const cached = options.cache.get(codec, chosen.encoder, this.mode);
      if (cached) this.#speeds.set(codec, cached);
    }
    this.#decisions = this.#decide();
  }

  get mode(): SpeedMode {
    return this.options.mode ?? ADVERTISE_MODE;
  }

  decisions(): readonly CodecDecision[] {
    return this.#decisions;
  }

  advertised(codec: VideoCodec): boolean {
    return this.#decisions.some((d) => d.codec === codec && d.advertised);
  }

  /** GameStream `CodecSupport`, live: each read reflects the latest decision. */
  readonly support = ((advertiser: CodecAdvertiser) => ({
    get h264() {
      return advertiser.advertised("h264");
    },
    get hevc() {
      return advertiser.advertised("hevc");
    },
    get av1() {
      return advertiser.advertised("av1");
    },
    hevcMain10: false,
    av1Main10: false,
  }))(this);

  /** Codecs whose advertising depends on a measurement that is missing or was taken under load. */
  toMeasure(): VideoCodec[] {
    if (this.options.allowSlow) return []; // nothing depends on the figures
    return VIDEO_CODECS.filter((codec) => {
      const chosen = sessionEncoder(this.options.probe, codec);
      if (codec === "h264" || !chosen || chosen.backend !== "software") return false;
      const cached = this.#speeds.get(codec);
      return !cached || measuredUnderLoad(cached, this.options.cores);
    });
  }

  /** Measures every codec of `toMeasure()` one after another, caching and re-deciding after each. */
  async measureMissing(shouldStop: () => boolean = () => false): Promise<void> {
    for (const codec of this.toMeasure()) {
      if (shouldStop()) return;
      try {
        const measured = await measureSpeed(this.options.native, codec, this.mode);
        this.options.cache.put(measured);
        this.#speeds.set(codec, measured);
        this.#decisions = this.#decide();
        const decision = this.#decisions.find((d) => d.codec === codec)!;
        this.options.log.info("encoder speed measured", {
          codec,
          encoder: measured.result.encoder,
          throughput_fps: measured.result.throughput_fps,
          paced_fps: measured.result.paced_fps,
          latency_p90_ms: measured.result.latency_ms.p90,
          load1: measured.load1,
          advertised: decision.advertised,
          reason: decision.reason,
        });
      } catch (error) {
        this.options.log.warn("encoder speed measurement failed", { codec, error: String(error) });
      }
    }
  }

  #decide(): CodecDecision[] {
    return decideCodecs({
      probe: this.options.probe,
      speeds: this.#speeds,
      mode: this.mode,
      allowSlow: this.options.allowSlow,
    });
  }
}
