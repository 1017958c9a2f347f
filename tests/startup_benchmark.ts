/**
 * Cold start and idle footprint of `punktfunk serve`, against `deno run` of an empty program measured in the
 * same run (issue 14: "cold start to a healthy /api/v1/health" and "idle RSS after 10 s").
 *
 *   deno run -A tests/startup_benchmark.ts [--runs N] [--idle-seconds S] [--gamestream]
 *
 * Each run starts the host with a fresh config directory (so identity and state are created, as on a first
 * start) and once more with the same directory (a warm restart), polls /api/v1/health every 5 ms until it
 * answers, waits the idle time, reads VmRSS from /proc and stops the host. The baseline is `deno run` of a
 * program that only waits on a timer: its time to first output and its RSS after the same idle time. Runs are
 * interleaved (host, baseline, host, …) so drift hits both alike; medians are printed with the ratio.
 * Not a test: it asserts nothing and is not picked up by `deno test` (no `_test` suffix).
 */
import { freePort, MAIN } from "./host_process.ts";

const args = Deno.args;
const option = (name: string, fallback: number) => {
  const index = args.indexOf(name);
  return index >= 0 ? Number(args[index + 1]) : fallback;
};
const RUNS = option("--runs", 3);
const IDLE_MS = option("--idle-seconds", 10) * 1000;
const GAMESTREAM = args.includes("--gamestream");
/** Health polling step: small against the ~100 ms being measured, cheap for the host. */
const POLL_MS = 5;

function residentMiB(pid: number): number {
  const kib = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1];
  return Number(kib) / 1024;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function measureHost(configDir: string): Promise<{ startMs: number; rssMiB: number }> {
  const port = freePort();
  const serveArgs = ["serve", "--mgmt-bind", `127.0.0.1:${port}`, ...(GAMESTREAM ? ["--gamestream"] : [])];
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, ...serveArgs],
    env: { PUNKTFUNK_CONFIG_DIR: configDir, PUNKTFUNK_LOG: "error", PUNKTFUNK_MDNS: "0", DISPLAY: "" },
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    let startMs = NaN;
    while (Number.isNaN(startMs)) {
      try {
        const response = await fetch(`http://127.0.0.1:${port}/api/v1/health`);
        await response.body?.cancel();
        if (response.ok) startMs = performance.now() - started;
      } catch { /* not listening yet */ }
      if (Number.isNaN(startMs)) await sleep(POLL_MS);
    }
    await sleep(IDLE_MS);
    return { startMs, rssMiB: residentMiB(child.pid) };
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

async function measureBaseline(): Promise<{ startMs: number; rssMiB: number }> {
  const program = `console.log("ready"); setTimeout(() => {}, ${IDLE_MS + 60_000});`;
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", program],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  await reader.read();
  const startMs = performance.now() - started;
  await sleep(IDLE_MS);
  const rssMiB = residentMiB(child.pid);
  child.kill("SIGTERM");
  reader.releaseLock();
  await child.stdout.cancel();
  await child.status;
  return { startMs, rssMiB };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const cold: { startMs: number; rssMiB: number }[] = [];
const warm: { startMs: number; rssMiB: number }[] = [];
const baseline: { startMs: number; rssMiB: number }[] = [];
for (let run = 0; run < RUNS; run++) {
  const dir = Deno.makeTempDirSync({ prefix: "punktfunk-startup-" });
  try {
    cold.push(await measureHost(`${dir}/config`));
    baseline.push(await measureBaseline());
    warm.push(await measureHost(`${dir}/config`));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const row = (label: string, samples: { startMs: number; rssMiB: number }[]) => {
  const start = median(samples.map((s) => s.startMs));
  const rss = median(samples.map((s) => s.rssMiB));
  const base = { start: median(baseline.map((s) => s.startMs)), rss: median(baseline.map((s) => s.rssMiB)) };
  console.log(
    `${label.padEnd(34)} start ${start.toFixed(0).padStart(5)} ms (${(start / base.start).toFixed(1)}x)` +
      `   RSS after ${IDLE_MS / 1000} s ${rss.toFixed(0).padStart(4)} MiB (${(rss / base.rss).toFixed(1)}x)`,
  );
};
console.log(`${RUNS} interleaved runs, medians; ratios against the deno baseline of the same run`);
row(`serve${GAMESTREAM ? " --gamestream" : ""}, first start`, cold);
row(`serve${GAMESTREAM ? " --gamestream" : ""}, restart`, warm);
row("deno eval of an idle program", baseline);
