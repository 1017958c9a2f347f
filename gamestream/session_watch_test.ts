import { assert, assertEquals } from "../tests/assert.ts";
import { classifyFecStatus, liveFigures, SessionWatch, STATS_EVERY_POLLS } from "./session_watch.ts";
import type { WatchedWorker } from "./session_watch.ts";
import type { FecStatus } from "./control.ts";

const report = (receivedData: number, receivedParity: number): FecStatus => ({
  frameIndex: 1,
  highestReceivedSequence: 0,
  nextContiguousSequence: 0,
  missingBeforeHighest: 0,
  totalData: 10,
  totalParity: 4,
  receivedData,
  receivedParity,
  fecPercentage: 40,
  blockIndex: 0,
  blockCount: 1,
});

Deno.test("FEC status: repaired when data and parity that arrived cover the data shards", () => {
  assertEquals(classifyFecStatus(report(8, 2)), "recovered");
  assertEquals(classifyFecStatus(report(9, 4)), "recovered");
  assertEquals(classifyFecStatus(report(7, 2)), "failed");
  assertEquals(classifyFecStatus(report(0, 0)), "failed");
});

Deno.test("live figures come from the native snapshot; missing or odd fields read as 0", () => {
  const session = {
    clientAddress: "10.0.0.2:5000",
    idrRequests: 3,
    fec: { recovered: 2, failed: 1 },
    rttMs: 1.234,
    nowMs: 9,
  };
  const live = liveFigures({
    fps: 59.5,
    send_mbps: 4.2,
    target_bitrate_kbps: 4000,
    encoder: "libx264",
    encoder_fallbacks: 1,
    frames_sent: 100,
    packets_sent: 900,
    keyframes: 2,
    latency_us: { total: { p50: 2100.5, p99: 8000, count: 100 } },
  }, session);
  assertEquals(live, {
    client_address: "10.0.0.2:5000",
    encoder: "libx264",
    encoder_fallbacks: 1,
    fps: 59.5,
    bitrate_kbps: 4200,
    target_bitrate_kbps: 4000,
    frames_sent: 100,
    packets_sent: 900,
    keyframes_sent: 2,
    idr_requests: 3,
    fec_recovered: 2,
    fec_failed: 1,
    host_processing_us: { p50: 2100.5, p99: 8000 },
    rtt_ms: 1.2,
    updated_unix_ms: 9,
  });
  const empty = liveFigures({ fps: "x" }, { ...session, rttMs: null });
  assertEquals([empty.fps, empty.packets_sent, empty.host_processing_us.p99, empty.rtt_ms], [0, 0, 0, null]);
});

/** A worker whose state the test sets, as the native side would. */
class ScriptedWorker implements WatchedWorker {
  finished = false;
  queued: Record<string, unknown>[] = [];
  snapshots = 0;
  events() {
    const out = this.queued;
    this.queued = [];
    return out;
  }
  stats() {
    return { frames_sent: ++this.snapshots };
  }
}

Deno.test("the watch ends on a finished worker with its last error, and snapshots every Nth poll", () => {
  const video = new ScriptedWorker();
  const audio = new ScriptedWorker();
  const dead: string[] = [];
  const seen: string[] = [];
  const watch = new SessionWatch([{ name: "video", handle: video }, { name: "audio", handle: audio }], {
    dead: (reason) => dead.push(reason),
    event: (worker, event) => seen.push(`${worker}:${event.event}`),
  });
  video.queued.push({ event: "client_bound", address: "127.0.0.1:40000" });
  for (let i = 0; i < STATS_EVERY_POLLS; i++) watch.poll(i);
  assertEquals(watch.clientAddress, "127.0.0.1:40000");
  assertEquals(watch.snapshot, { stats: { frames_sent: 1 }, atMs: STATS_EVERY_POLLS - 1 });
  assertEquals(audio.snapshots, 0);
  assertEquals(dead, []);

  audio.queued.push({ event: "error", message: "pulse went away" }, { event: "stopped" });
  audio.finished = true;
  watch.poll();
  assertEquals(dead, ["native audio worker stopped: pulse went away"]);
  assertEquals(seen, ["video:client_bound", "audio:error", "audio:stopped"]);
  // Stopped: later polls read nothing.
  video.finished = true;
  watch.poll();
  assertEquals(dead.length, 1);
  assert(video.queued.length === 0);
});
