/**
 * `punktfunk selftest`: what this machine can do — native core, encoders, capture and input
 * backends, QUIC, config paths — with a reason for every "no".
 */
import type { Env } from "./config.ts";
import { resolveConfigDir } from "./config.ts";
import { NativeCore } from "./native_abi.ts";
import type { EncoderProbeReport } from "./native_abi.ts";
import {
  ADVERTISE_MODE,
  currentMachineKey,
  holdsMode,
  measuredUnderLoad,
  measureSpeed,
  modeName,
  sessionEncoder,
  SpeedCache,
  VIDEO_CODECS,
} from "./codec_speed.ts";
import type { MeasuredSpeed, SpeedMode } from "./codec_speed.ts";
import { StateDb } from "./state_db.ts";
import { createSelfSignedCertificate } from "./x509.ts";

export interface SelftestItem {
  name: string;
  ok: boolean;
  detail: string;
}

export interface SelftestSection {
  title: string;
  items: SelftestItem[];
}

function pathExists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The local display number named by DISPLAY, or the reason there is none to probe. */
function localDisplay(env: Env): { display: string } | { reason: string } {
  const display = env.DISPLAY;
  if (!display) return { reason: "DISPLAY is not set (start Xvfb or pass --x11-display)" };
  const number = /^(?:unix)?:(\d+)(?:\.\d+)?$/.exec(display)?.[1];
  if (number === undefined) {
    return { reason: `DISPLAY=${display} is not a local display (only :N is supported)` };
  }
  return { display: `:${number}` };
}

/** Runs `probe` with the native core loaded; its load error is the reason otherwise. */
async function withNative(
  name: string,
  probe: (native: NativeCore) => Promise<SelftestItem>,
): Promise<SelftestItem> {
  let native: NativeCore;
  try {
    native = NativeCore.open();
  } catch (error) {
    return { name, ok: false, detail: `native core not loaded: ${(error as Error).message}` };
  }
  try {
    return await probe(native);
  } catch (error) {
    return { name, ok: false, detail: (error as Error).message };
  } finally {
    native.close();
  }
}

/** X11 capture: opens the display and checks MIT-SHM and the pixel format, as a session would. */
export function x11CaptureProbe(env: Env): Promise<SelftestItem> {
  const name = "x11";
  const local = localDisplay(env);
  if ("reason" in local) return Promise.resolve({ name, ok: false, detail: local.reason });
  return withNative(name, async (native) => {
    const { width, height } = await native.probeX11Capture(local.display);
    return {
      name,
      ok: true,
      detail: `display ${local.display} opens, MIT-SHM capture at ${width}x${height}`,
    };
  });
}

/** XTest input: opens the display and asks for the XTEST extension, as a session would. */
export function xtestProbe(env: Env): Promise<SelftestItem> {
  const name = "xtest (keyboard/mouse)";
  const local = localDisplay(env);
  if ("reason" in local) return Promise.resolve({ name, ok: false, detail: local.reason });
  return withNative(name, async (native) => {
    const injector = await native.openX11Input(local.display);
    try {
      const { width, height } = injector.screenSize();
      return { name, ok: true, detail: `display ${local.display} opens, XTEST present (${width}x${height})` };
    } finally {
      injector.close();
    }
  });
}

function configSection(env: Env): SelftestSection {
  const items: SelftestItem[] = [];
  try {
    const dir = resolveConfigDir(env);
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const probe = `${dir}/.selftest-${crypto.randomUUID()}`;
    Deno.writeTextFileSync(probe, "ok", { mode: 0o600 });
    Deno.removeSync(probe);
    items.push({ name: "config dir", ok: true, detail: `${dir} (writable)` });
    const database = `${dir}/state.db`;
    items.push({
      name: "state database",
      ok: true,
      detail: pathExists(database) ? `${database} (exists)` : `${database} (created by the first serve)`,
    });
  } catch (error) {
    items.push({ name: "config dir", ok: false, detail: (error as Error).message });
  }
  return { title: "config", items };
}

/** One line of figures: what the encoder did, when, and under what load. */
export function describeSpeed(measured: MeasuredSpeed, fresh: boolean): string {
  const r = measured.result;
  const when = fresh
    ? "measured now"
    : `cached from ${
      new Date(measured.measuredAtUnix * 1000).toISOString().slice(0, 16).replace("T", " ")
    } UTC`;
  const load = Number.isFinite(measured.load1) && measured.load1 >= 0
    ? `load ${measured.load1.toFixed(1)}`
    : "load ?";
  return `${r.encoder} ${r.speed}: ${r.throughput_fps.toFixed(1)} fps max, ${
    r.paced_fps.toFixed(1)
  } fps paced, ` +
    `latency p50 ${r.latency_ms.p50.toFixed(1)} / p90 ${r.latency_ms.p90.toFixed(1)} ms` +
    `${r.frames_held > 0 ? `, ${r.frames_held} frame(s) held` : ""}${
      r.truncated ? ", stopped at the time cap" : ""
    }` +
    ` (${when}, ${load})`;
}

/**
 * Encoder speed per codec and mode (issue 14): the cached figure when one exists for this machine
 * and was not taken under load, else measured now (and cached). `ok` is whether it holds the mode.
 */
async function encoderSpeedSection(
  native: NativeCore,
  report: EncoderProbeReport,
  env: Env,
  modes: readonly SpeedMode[],
): Promise<SelftestSection> {
  let db: StateDb | null = null;
  try {
    db = StateDb.open(`${resolveConfigDir(env)}/state.db`);
  } catch {
    db = null; // measured without caching; the config section says why the directory is unusable
  }
  try {
    const machine = currentMachineKey();
    const cache = db ? new SpeedCache(db, machine) : null;
    const items: SelftestItem[] = [];
    for (const mode of modes) {
      for (const codec of VIDEO_CODECS) {
        const chosen = sessionEncoder(report, codec);
        const name = `${codec} ${modeName(mode)}`;
        if (!chosen) {
          items.push({ name, ok: false, detail: "no encoder opens" });
          continue;
        }
        let measured = cache?.get(codec, chosen.encoder, mode);
        const fresh = !measured || measuredUnderLoad(measured, machine.cores);
        try {
          if (fresh) {
            measured = await measureSpeed(native, codec, mode);
            cache?.put(measured);
          }
        } catch (error) {
          items.push({ name, ok: false, detail: `measurement failed: ${(error as Error).message}` });
          continue;
        }
        const verdict = holdsMode(measured!.result);
        const advertising = modeName(mode) === modeName(ADVERTISE_MODE) && codec !== "h264"
          ? verdict.holds
            ? "; advertised to GameStream clients"
            : "; not advertised (see --gamestream-allow-slow-codecs)"
          : "";
        items.push({
          name,
          ok: verdict.holds,
          detail: `${describeSpeed(measured!, fresh)}${
            verdict.holds ? "" : ` — ${verdict.reason}`
          }${advertising}`,
        });
      }
    }
    return { title: `encoder speed (${machine.cores} cores, ${machine.cpuModel})`, items };
  } finally {
    db?.close();
  }
}

async function nativeSections(env: Env, speedModes: readonly SpeedMode[]): Promise<SelftestSection[]> {
  let native: NativeCore;
  try {
    native = NativeCore.open();
  } catch (error) {
    const detail = (error as Error).message;
    return [
      { title: "native core", items: [{ name: "library", ok: false, detail }] },
      { title: "encoders", items: [{ name: "probe", ok: false, detail: "native core not loaded" }] },
    ];
  }
  try {
    const report = await native.probeEncoders(1280, 720);
    return [
      {
        title: "native core",
        items: [{ name: "library", ok: true, detail: `ABI version ${native.abiVersion}` }],
      },
      {
        title: `encoders (${report.width}x${report.height})`,
        items: report.encoders.map((e) => ({
          name: `${e.codec} ${e.backend} (${e.encoder})`,
          ok: e.available,
          detail: e.available ? "opens" : e.reason ?? "unavailable",
        })),
      },
      await encoderSpeedSection(native, report, env, speedModes),
    ];
  } finally {
    native.close();
  }
}

async function captureSection(env: Env): Promise<SelftestSection> {
  return {
    title: "capture backends",
    items: [
      { name: "synthetic", ok: true, detail: "always available (test pattern)" },
      await x11CaptureProbe(env),
      { name: "wayland/pipewire", ok: false, detail: "no, not implemented" },
    ],
  };
}

async function inputSection(env: Env): Promise<SelftestSection> {
  return {
    title: "input backends",
    items: [
      { name: "recording", ok: true, detail: "always available (records events, injects nothing)" },
      await xtestProbe(env),
      // Gamepads, touch and pen would go through uinput; that backend does not exist yet.
      { name: "uinput (gamepads)", ok: false, detail: "no, not implemented" },
    ],
  };
}

async function quicSection(): Promise<SelftestSection> {
  const name = "QUIC listener";
  if (typeof Deno.QuicEndpoint !== "function") {
    return {
      title: "network",
      items: [{ name, ok: false, detail: "Deno.QuicEndpoint missing: run with --unstable-net" }],
    };
  }
  try {
    const cert = createSelfSignedCertificate({
      kind: "p256",
      commonName: "punktfunk selftest",
      notAfter: new Date(Date.now() + 86_400_000),
    });
    const endpoint = new Deno.QuicEndpoint({ hostname: "127.0.0.1", port: 0 });
    endpoint.listen({ cert: cert.certPem, key: cert.keyPem, alpnProtocols: ["punktfunk/1"] });
    const port = endpoint.addr.port;
    endpoint.close();
    await Promise.resolve();
    return { title: "network", items: [{ name, ok: true, detail: `listened on 127.0.0.1:${port}` }] };
  } catch (error) {
    return { title: "network", items: [{ name, ok: false, detail: (error as Error).message }] };
  }
}

export async function runSelftest(
  env: Env,
  speedModes: readonly SpeedMode[] = [ADVERTISE_MODE],
): Promise<SelftestSection[]> {
  return [
    configSection(env),
    ...(await nativeSections(env, speedModes)),
    await captureSection(env),
    await inputSection(env),
    await quicSection(),
  ];
}

export function formatSelftest(sections: SelftestSection[]): string {
  const lines: string[] = [];
  for (const section of sections) {
    lines.push(`${section.title}:`);
    for (const item of section.items) {
      lines.push(`  ${item.ok ? "yes" : "no "}  ${item.name}: ${item.detail}`);
    }
  }
  return lines.join("\n") + "\n";
}
