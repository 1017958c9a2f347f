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

export async function runSelftest(env: Env): Promise<SelftestSection[]> {
  return [
    configSection(env),
    ...(await nativeSections()),
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
