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

/** The X11 display named by DISPLAY, if its local socket exists. */
export function x11DisplayProbe(env: Env): SelftestItem {
  const display = env.DISPLAY;
  if (!display) {
    return { name: "x11", ok: false, detail: "DISPLAY is not set (start Xvfb or pass --x11-display)" };
  }
  const number = /^(?:unix)?:(\d+)(?:\.\d+)?$/.exec(display)?.[1];
  if (number === undefined) {
    return {
      name: "x11",
      ok: false,
      detail: `DISPLAY=${display} is not a local display (only :N is supported)`,
    };
  }
  const socket = `/tmp/.X11-unix/X${number}`;
  return pathExists(socket)
    ? { name: "x11", ok: true, detail: `display :${number} (socket ${socket})` }
    : { name: "x11", ok: false, detail: `DISPLAY=${display} but ${socket} does not exist` };
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
    items.push({ name: "state database", ok: true, detail: `${dir}/state.db` });
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

function captureSection(env: Env): SelftestSection {
  return {
    title: "capture backends",
    items: [
      { name: "synthetic", ok: true, detail: "always available (test pattern)" },
      x11DisplayProbe(env),
      { name: "wayland/pipewire", ok: false, detail: "not implemented yet" },
    ],
  };
}

function inputSection(env: Env): SelftestSection {
  const x11 = x11DisplayProbe(env);
  const uinput = pathExists("/dev/uinput")
    ? { name: "uinput (gamepads)", ok: true, detail: "/dev/uinput present" }
    : { name: "uinput (gamepads)", ok: false, detail: "/dev/uinput does not exist (load the uinput module)" };
  return {
    title: "input backends",
    items: [
      { name: "recording", ok: true, detail: "always available (records events, injects nothing)" },
      { ...x11, name: "xtest (keyboard/mouse)" },
      uinput,
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
    captureSection(env),
    inputSection(env),
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
