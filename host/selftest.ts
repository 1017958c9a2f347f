/**
 * `punktfunk selftest`: what this machine can do — native core, encoders, capture and input
 * backends, QUIC, config paths — with a reason for every "no".
 */
import type { Env } from "./config.ts";
import { resolveConfigDir } from "./config.ts";
import { NativeCore } from "./native_abi.ts";
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

async function nativeSections(): Promise<SelftestSection[]> {
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

export async function runSelftest(env: Env): Promise<SelftestSection[]> {
  return [
    configSection(env),
    ...(await nativeSections()),
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
