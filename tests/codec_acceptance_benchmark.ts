/**
 * Issue 14 acceptance as a benchmark (a speed target: it prints figures and ratios against a baseline
 * measured in the same run, see docs/perf.md; it is not part of the CI suite):
 *
 *   deno run -A tests/codec_acceptance_benchmark.ts [--allow-slow-codecs] [--seconds N]
 *
 * Starts `serve --gamestream` with a fresh state DB, waits for its background encoder speed
 * measurement, pairs the Moonlight-like test client, and — as a client that decodes AV1, HEVC and
 * H.264 — picks the best codec the host advertises and streams 1280x720@60 for N seconds (default
 * 10). The baseline is H.264 at the same mode, streamed right after. For each run it prints the
 * client's decoded frame rate over the window and the host's own per-frame figures (its "video
 * session stopped" line: frames sent per second, host latency capture → last packet sent).
 * With --allow-slow-codecs every codec whose encoder opens is advertised, and each is streamed: the
 * "before" picture of a host that advertises what cannot keep up.
 */
import { startGameStreamHost, submitPinWhenAsked, waitUntil } from "./gamestream_client/host_harness.ts";
import { GameStreamTestClient, xmlTag } from "./gamestream_client/client.ts";

const args = new Set(Deno.args);
const allowSlow = args.has("--allow-slow-codecs");
const secondsIndex = Deno.args.indexOf("--seconds");
const SECONDS = secondsIndex >= 0 ? Number(Deno.args[secondsIndex + 1]) : 10;
const MODE = { width: 1280, height: 720, fps: 60, bitrateKbps: 10_000, packetSize: 1024 };
/** Frames before the window opens: the first second holds the key frame and encoder start-up. */
const WARMUP_FRAMES = 60;
// ServerCodecModeSupport bits: H.264 0x1, HEVC Main 0x100, AV1 Main 8-bit 0x10000.
const PREFERENCE = [["av1", 0x10000], ["hevc", 0x100], ["h264", 0x1]] as const;
type Codec = (typeof PREFERENCE)[number][0];

interface RunFigures {
  codec: Codec;
  clientFps: number;
  /** Frames that arrived complete (before decoding) per second, and frames lost, over the window. */
  receivedFps: number;
  lost: number;
  host: { encoder: string; fps: number; p50: number; p90: number; p99: number; skipped: number } | null;
}

/** The host's summary line of the session that just stopped (native `video session stopped`). */
function hostSummary(stderr: string, after: number): RunFigures["host"] {
  const line = stderr.slice(after).split("\n").find((l) => l.includes("video session stopped"));
  if (!line) return null;
  const msg = (JSON.parse(line) as { msg: string }).msg;
  const m =
    /via (\S+), \d+ frames sent in [\d.]+ s \(([\d.]+) fps\), (\d+) skipped; host latency p50 ([\d.]+) \/ p90 ([\d.]+) \/ p99 ([\d.]+)/
      .exec(msg);
  if (!m) return null;
  return { encoder: m[1], fps: +m[2], skipped: +m[3], p50: +m[4], p90: +m[5], p99: +m[6] };
}

async function stream(
  client: GameStreamTestClient,
  stderr: () => string,
  codec: Codec,
): Promise<RunFigures> {
  const mode = { ...MODE, codec };
  const launch = await client.launch(mode);
  const stream = await client.handshake(xmlTag(launch.xml, "sessionUrl0")!, launch, mode);
  await client.startStreams(stream, { packetSize: MODE.packetSize, codec });
  const decoded = () => Number(client.video?.stats().frames_decoded ?? 0);
  await waitUntil(`${WARMUP_FRAMES} ${codec} frames`, () => decoded() >= WARMUP_FRAMES, 60_000);
  const stat = (name: string) => Number(client.video?.stats()[name] ?? 0);
  const [startFrames, startReceived, startLost] = [decoded(), stat("frames_received"), stat("frames_lost")];
  const started = performance.now();
  // The window is a duration by design: the figure is frames per second over it.
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
  const seconds = (performance.now() - started) / 1000;
  const clientFps = (decoded() - startFrames) / seconds;
  const receivedFps = (stat("frames_received") - startReceived) / seconds;
  const lost = stat("frames_lost") - startLost;
  const logMark = stderr().length;
  await client.httpsGet("/cancel");
  await client.close();
  const host = await waitUntil("the host's session summary", () => hostSummary(stderr(), logMark), 20_000);
  return { codec, clientFps, receivedFps, lost, host };
}

function print(run: RunFigures, baseline: RunFigures | null): void {
  const h = run.host;
  const interval = 1000 / MODE.fps;
  const ratio = baseline && baseline !== run
    ? `  vs H.264: fps ×${(run.clientFps / baseline.clientFps).toFixed(2)}, host p90 ×${
      ((h?.p90 ?? NaN) / (baseline.host?.p90 ?? NaN)).toFixed(2)
    }`
    : "";
  console.log(
    `${run.codec.padEnd(4)} client ${run.clientFps.toFixed(1)} fps decoded, ${
      run.receivedFps.toFixed(1)
    } received, ` +
      `${run.lost} lost | host ${h?.encoder} ${h?.fps.toFixed(1)} fps, ` +
      `latency p50 ${h?.p50} / p90 ${h?.p90} / p99 ${h?.p99} ms (${
        ((h?.p90 ?? NaN) / interval).toFixed(2)
      } intervals at p90), ` +
      `${h?.skipped} skipped${ratio}`,
  );
}

const load = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
const { host, base, api } = await startGameStreamHost(allowSlow ? ["--gamestream-allow-slow-codecs"] : []);
const client = new GameStreamTestClient("127.0.0.1", base);
try {
  console.log(`load average at start: ${load()}; ${navigator.hardwareConcurrency} cores`);
  await waitUntil("the host's ready line", () => host.stderr().includes("punktfunk host ready"));
  if (!allowSlow) {
    // Wait for the background measurement: the host logs when it starts, then one line per codec.
    const pending = (): number => {
      const lines = host.stderr().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
      const started = lines.find((l) => l.msg === "measuring encoder speed in the background");
      if (!started) return 0;
      const expected = String(started.codecs).split(",").length;
      return expected -
        lines.filter((l) => l.msg === "encoder speed measured" || l.msg.includes("measurement failed"))
          .length;
    };
    await waitUntil("the encoder speed measurement", () => pending() === 0, 120_000);
    for (const line of host.stderr().split("\n").filter((l) => l.includes("encoder speed measured"))) {
      const r = JSON.parse(line);
      console.log(
        `measured ${r.codec} (${r.encoder}): ${r.throughput_fps} fps max, ${r.paced_fps} paced, ` +
          `p90 ${r.latency_p90_ms} ms, load ${r.load1} → ${
            r.advertised ? "advertised" : "not advertised"
          }: ${r.reason}`,
      );
    }
  }
  const paired = await client.pair("7215", submitPinWhenAsked(api, "7215"));
  if (paired !== "paired") throw new Error(`pairing failed: ${paired}`);
  const support = Number(xmlTag(await client.httpsGet("/serverinfo"), "ServerCodecModeSupport"));
  const advertised = PREFERENCE.filter(([, bit]) => (support & bit) !== 0).map(([codec]) => codec);
  console.log(
    `advertised: ${advertised.join(", ")}; a client decoding AV1+HEVC+H.264 picks ${advertised[0]}`,
  );

  const toStream: Codec[] = allowSlow ? [...advertised].reverse() : [advertised[0]];
  if (!toStream.includes("h264")) toStream.push("h264");
  const runs: RunFigures[] = [];
  for (const codec of toStream) runs.push(await stream(client, () => host.stderr(), codec));
  const baseline = runs.find((r) => r.codec === "h264") ?? null;
  for (const run of runs) print(run, baseline);
  const chosen = runs.find((r) => r.codec === advertised[0])!;
  const holds = chosen.clientFps >= 58 && (chosen.host?.p90 ?? Infinity) <= 2 * 1000 / MODE.fps;
  console.log(
    `acceptance (negotiated ${chosen.codec}: ≥ 58 fps, host latency p90 ≤ 2 intervals): ${
      holds ? "met" : "NOT met"
    }` +
      `; load average at end: ${load()}`,
  );
} finally {
  await client.close();
  await host.cleanup();
}
