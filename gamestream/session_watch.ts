/**
 * Watches a GameStream session's native workers on a timer (the event/stats ABI, never a call per packet): a
 * worker that finished on its own ends the session with the reason it reported, and the video worker's
 * counter snapshot becomes the live figures of `/api/v1/status`.
 */
import type { FecStatus } from "./control.ts";
import type { LiveStream } from "../mgmt/mod.ts";

/** What the watch reads of a native session handle (VideoSenderHandle, MediaSessionHandle). */
export interface WatchedWorker {
  readonly finished: boolean;
  events(): Record<string, unknown>[];
  stats(): Record<string, unknown>;
}

/**
 * Poll period. `/status` must be right within 1 s of a worker dying: 200 ms leaves 800 ms for the native threads
 * to wind down and the session to stop, and costs three cheap FFI calls per worker per poll.
 */
export const SESSION_WATCH_INTERVAL_MS = 200;
/**
 * Counter snapshots every 5th poll (≈ 1 s): the native snapshot's rates cover the time since the previous one,
 * and a 1 s window gives a steady fps (a 200 ms window at 60 fps would move in steps of 5 fps).
 */
export const STATS_EVERY_POLLS = 5;

export interface FecTally {
  recovered: number;
  failed: number;
}

/**
 * A client FEC status report (sent only after a block had losses) counts as repaired when the shards that arrived,
 * data and parity together, cover the block's data shards; otherwise the block was lost.
 */
export function classifyFecStatus(report: FecStatus): keyof FecTally {
  return report.receivedData + report.receivedParity >= report.totalData ? "recovered" : "failed";
}

/** Session-level figures the native snapshot does not have. */
export interface SessionFigures {
  clientAddress: string;
  idrRequests: number;
  fec: FecTally;
  rttMs: number | null;
  nowMs: number;
}

const count = (value: unknown): number => typeof value === "number" && Number.isFinite(value) ? value : 0;

/** The `LiveStream` view of a video sender snapshot (native-core/src/pipeline/stats.rs) and session figures. */
export function liveFigures(snapshot: Record<string, unknown>, session: SessionFigures): LiveStream {
  const latency = snapshot.latency_us as Record<string, Record<string, unknown>> | undefined;
  const total = latency?.total ?? {};
  return {
    client_address: session.clientAddress,
    encoder: typeof snapshot.encoder === "string" ? snapshot.encoder : "",
    encoder_fallbacks: count(snapshot.encoder_fallbacks),
    fps: count(snapshot.fps),
    bitrate_kbps: Math.round(count(snapshot.send_mbps) * 1000),
    target_bitrate_kbps: count(snapshot.target_bitrate_kbps),
    frames_sent: count(snapshot.frames_sent),
    packets_sent: count(snapshot.packets_sent),
    keyframes_sent: count(snapshot.keyframes),
    idr_requests: session.idrRequests,
    fec_recovered: session.fec.recovered,
    fec_failed: session.fec.failed,
    host_processing_us: { p50: count(total.p50), p99: count(total.p99) },
    rtt_ms: session.rttMs === null ? null : Math.round(session.rttMs * 10) / 10,
    updated_unix_ms: session.nowMs,
  };
}

export interface SessionWatchHandlers {
  /** A worker finished on its own; the watch has stopped. */
  dead(reason: string): void;
  /** Every event a worker queued (started, client_bound, encoder_fallback, error, stopped …). */
  event(worker: string, event: Record<string, unknown>): void;
}

/** Polls the named workers; the first one is the video sender whose snapshot feeds the live figures. */
export class SessionWatch {
  #timer: ReturnType<typeof setInterval> | null = null;
  #polls = 0;
  #stopped = false;
  readonly #lastError = new Map<string, string>();
  #clientAddress: string | null = null;
  #snapshot: Record<string, unknown> | null = null;
  #snapshotMs = 0;

  constructor(
    private readonly workers: { name: string; handle: WatchedWorker }[],
    private readonly handlers: SessionWatchHandlers,
  ) {}

  start(intervalMs = SESSION_WATCH_INTERVAL_MS): void {
    if (this.#timer !== null || this.#stopped) return;
    this.#timer = setInterval(() => {
      try {
        this.poll();
      } catch (error) {
        // A handle that cannot be read any more is as good as dead: end the session rather than watch nothing.
        this.stop();
        this.handlers.dead(`session watch failed: ${(error as Error).message}`);
      }
    }, intervalMs);
  }

  /** Idempotent; call before closing the handles. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** The client's video address once its ping bound the stream. */
  get clientAddress(): string | null {
    return this.#clientAddress;
  }

  /** The latest video snapshot and when it was taken, or null before the first. */
  get snapshot(): { stats: Record<string, unknown>; atMs: number } | null {
    return this.#snapshot ? { stats: this.#snapshot, atMs: this.#snapshotMs } : null;
  }

  /** One round: drain events, end on a finished worker, and every STATS_EVERY_POLLS-th time take a snapshot. */
  poll(nowMs = Date.now()): void {
    if (this.#stopped) return;
    for (const { name, handle } of this.workers) {
      // `finished` first: the native side queues its reason before setting it, so the drain below has it.
      const finished = handle.finished;
      for (const event of handle.events()) {
        if (event.event === "error" && typeof event.message === "string") {
          this.#lastError.set(name, event.message);
        }
        if (event.event === "client_bound" && typeof event.address === "string") {
          this.#clientAddress = event.address;
        }
        this.handlers.event(name, event);
      }
      if (finished) {
        this.stop();
        const why = this.#lastError.get(name) ?? "it reported no error";
        this.handlers.dead(`native ${name} worker stopped: ${why}`);
        return;
      }
    }
    this.#polls++;
    if (this.#polls % STATS_EVERY_POLLS === 0 && this.workers.length > 0) {
      this.#snapshot = this.workers[0].handle.stats();
      this.#snapshotMs = nowMs;
    }
  }
}
