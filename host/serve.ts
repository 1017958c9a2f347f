/**
 * `punktfunk serve`: wires config, identity, state, the native core and the management API into
 * one running host, and registers everything with the lifecycle for an orderly shutdown.
 */
import { parseFileConfig, resolveConfigDir, resolveServeConfig } from "./config.ts";
import type { Env, FileConfig, ServeConfig, ServeFlags } from "./config.ts";
import { ensureConfigDir, loadOrCreateIdentity, startTlsRotation, writeSecretFile } from "./identity.ts";
import type { HostIdentity } from "./identity.ts";
import { Lifecycle } from "./lifecycle.ts";
import type { Logger } from "./log.ts";
import { availableCodecs, NativeCore } from "./native_abi.ts";
import type { EncoderProbeReport } from "./native_abi.ts";
import { StateDb } from "./state_db.ts";
import { CodecAdvertiser, currentMachineKey, SpeedCache } from "./codec_speed.ts";
import { parseVideoFault, TEST_VIDEO_FAULT_ENV } from "./test_fault.ts";
import { idleGameStreamControl, idleNativeControl } from "./idle_planes.ts";
import { GAMESTREAM_APP_VERSION, GFE_VERSION, VERSION } from "./version.ts";
import { GameStreamTrustStore, NativeTrustStore } from "../pairing/mod.ts";
import type { WaitingCeremony } from "../pairing/mod.ts";
import { createMgmtApp, startMgmtServer } from "../mgmt/mod.ts";
import type { HostInfo, PairingCeremony, RuntimeStatus } from "../mgmt/mod.ts";
import { checkBindPolicy } from "../mgmt/server.ts";
import type { GameStreamControl } from "../mgmt/mod.ts";
import { GameStreamHost } from "../gamestream/host.ts";
import { gameStreamPorts } from "../gamestream/rtsp.ts";
import { RecordingInjector } from "./input_injection.ts";
import type { InputInjector } from "./input_injection.ts";
import { X11InputInjector } from "./x11_input.ts";
import { publishGameStreamService } from "./mdns.ts";

/** GameStream's fixed port map (Moonlight derives the stream ports from the HTTP base 47989). */
export const GAMESTREAM_PORTS = {
  http: 47989,
  https: 47984,
  rtsp: 48010,
  video: 47998,
  control: 47999,
  audio: 48000,
};
/** How often native log records are pulled into the TS logger; bounded queue holds 4096 between. */
export const NATIVE_LOG_DRAIN_MS = 200;

export interface RunningHost {
  config: ServeConfig;
  identity: HostIdentity;
  mgmtUrl: string;
  encoders: EncoderProbeReport;
  /** What GameStream advertises, and why (updated when the background speed measurement ends). */
  codecs: CodecAdvertiser;
  lifecycle: Lifecycle;
}

/** Reads `<config dir>/config.json` when present; a broken file is an error, not a default. */
export function readFileConfig(configDir: string): FileConfig {
  const path = `${configDir}/config.json`;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return {};
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
  return parseFileConfig(text, path);
}

function readTokenFile(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`cannot read management token file ${path}: ${(error as Error).message}`);
  }
}

export function loadServeConfig(flags: ServeFlags, env: Env): ServeConfig {
  const configDir = resolveConfigDir(env);
  return resolveServeConfig({ flags, env, file: readFileConfig(configDir), configDir, readTokenFile });
}

/** Best-effort primary LAN IPv4 (first non-loopback interface), else loopback. */
export function primaryLanIp(): string {
  try {
    const candidate = Deno.networkInterfaces().find((i) =>
      i.family === "IPv4" && !i.address.startsWith("127.")
    );
    return candidate?.address ?? "127.0.0.1";
  } catch {
    return "127.0.0.1";
  }
}

export async function startHost(config: ServeConfig, log: Logger): Promise<RunningHost> {
  // Policy first: refuse an unsafe bind before touching any state.
  checkBindPolicy(config.mgmtBind.host, config.mgmtToken);
  const lifecycle = new Lifecycle(log.child("lifecycle"));
  try {
    ensureConfigDir(config.configDir, log);
    const identity = loadOrCreateIdentity(config.configDir, { log: log.child("identity") });
    const db = StateDb.open(`${config.configDir}/state.db`);
    lifecycle.onShutdown("state database", () => db.close());

    const native = NativeCore.open();
    lifecycle.onShutdown("native core", () => native.close());
    native.setLogLevel(config.logLevel);
    const drainNativeLogs = () => {
      for (const record of native.drainLogs()) log.record(record);
    };
    const drainTimer = setInterval(drainNativeLogs, NATIVE_LOG_DRAIN_MS);
    lifecycle.onShutdown("native log drain", () => {
      clearInterval(drainTimer);
      drainNativeLogs();
    });

    const encoders = await native.probeEncoders(1280, 720);
    drainNativeLogs();
    for (const probe of encoders.encoders) {
      log.child("encode").debug("encoder probe", { ...probe });
    }
    const codecs = availableCodecs(encoders);
    log.info("encoders available", {
      chosen: encoders.encoders.filter((e) => e.available).map((e) => e.encoder).join(",") || "none",
    });
    const machine = currentMachineKey();
    const advertiser = new CodecAdvertiser({
      native,
      cache: new SpeedCache(db, machine),
      probe: encoders,
      cores: machine.cores,
      allowSlow: config.gamestream.allowSlowCodecs,
      log: log.child("encode"),
    });
    for (const decision of advertiser.decisions()) log.info("codec advertising", { ...decision });

    const gamestreamStore = new GameStreamTrustStore(db);
    const nativeStore = new NativeTrustStore(db);
    let mgmtPort = config.mgmtBind.port;
    const hostInfo: HostInfo = {
      hostname: Deno.hostname(),
      uniqueid: identity.uniqueId,
      local_ip: primaryLanIp(),
      version: VERSION,
      abi_version: native.abiVersion,
      app_version: GAMESTREAM_APP_VERSION,
      gfe_version: GFE_VERSION,
      codecs,
      ports: { mgmt: mgmtPort, ...gameStreamPorts(config.gamestream.basePort) },
    };
    let gamestream: GameStreamHost | null = null;
    let gamestreamControl: GameStreamControl = idleGameStreamControl(gamestreamStore);
    if (config.gamestream.enabled) {
      const gs = config.gamestream;
      const testVideoFault = parseVideoFault(Deno.env.get(TEST_VIDEO_FAULT_ENV));
      if (testVideoFault) {
        log.warn("TEST FAULT INJECTION active: streams will fail on purpose", { ...testVideoFault });
      }
      const injector = await openInputBackend(native, gs.x11Display, log.child("input"));
      lifecycle.onShutdown("input", () => injector.close());
      gamestream = new GameStreamHost({
        bind: gs.bind,
        basePort: gs.basePort,
        hostname: Deno.hostname(),
        uniqueId: identity.uniqueId,
        certPem: identity.gamestream.certPem,
        keyPem: identity.gamestream.keyPem,
        store: gamestreamStore,
        native,
        // Live flags: serverinfo and RTSP read the latest decision on every request.
        codecs: advertiser.support,
        desktop: gs.x11Display ? { kind: "x11", display: gs.x11Display } : { kind: "synthetic" },
        input: injector,
        audioSource: gs.audioSource,
        resumeGraceMs: gs.resumeGraceSeconds * 1000,
        videoFault: testVideoFault ?? undefined,
        log: log.child("gamestream"),
      });
      await gamestream.start();
      const running = gamestream;
      lifecycle.onShutdown("GameStream", () => running.close());
      const idle = gamestreamControl;
      const ceremonyView = (ceremony: WaitingCeremony): PairingCeremony => ({
        id: ceremony.id,
        device_name: ceremony.deviceName,
        source_address: ceremony.sourceIp,
        started_unix: Math.floor(ceremony.startedMs / 1000),
        expires_unix: Math.floor(ceremony.expiresMs / 1000),
      });
      gamestreamControl = {
        ...idle,
        pinPending: () => running.pairing.pinPending(),
        waitingCeremonies: () => running.pairing.waitingCeremonies().map(ceremonyView),
        cancelCeremony: (id) => {
          const cancelled = running.pairing.cancelCeremony(id);
          if (cancelled) log.info("pairing ceremony cancelled through the management API", { ceremony: id });
          return cancelled;
        },
        submitPin: (pin, ceremonyId) => {
          const result = running.pairing.submitPin(pin, ceremonyId);
          if (result.kind === "delivered") {
            log.info("pairing PIN delivered", {
              ceremony: result.ceremony.id,
              source: result.ceremony.sourceIp,
            });
            return { kind: "delivered" };
          }
          return result.kind === "ambiguous"
            ? { ...result, waiting: result.waiting.map(ceremonyView) }
            : result;
        },
        unpairClient: (fingerprint) => {
          const removed = idle.unpairClient(fingerprint);
          void running.unpair(fingerprint);
          return removed;
        },
        stopSession: () => void running.stopSession("stopped through the management API"),
        requestIdr: () => running.requestIdr(),
      };
      if (gs.mdns) {
        const mdns = publishGameStreamService(Deno.hostname(), running.ports.http, log.child("mdns"));
        lifecycle.onShutdown("mDNS", () => mdns.close());
      }
    }
    const status = (): RuntimeStatus => ({
      video_streaming: false,
      audio_streaming: false,
      pin_pending: gamestream?.pairing.pinPending() ?? false,
      paired_clients: gamestreamStore.count(),
      session: null,
      stream: null,
      live: null,
      ...gamestream?.status(),
    });
    const mgmt = createMgmtApp({
      token: config.mgmtToken,
      log: log.child("mgmt"),
      health: () => ({ status: "ok", version: VERSION, abi_version: native.abiVersion }),
      hostInfo: () => ({ ...hostInfo, ports: { ...hostInfo.ports, mgmt: mgmtPort } }),
      status,
      compositors: () => [], // no virtual-display backend exists yet: nothing to offer
      gamestream: gamestreamControl,
      native: idleNativeControl(nativeStore),
    }, { bindHost: config.mgmtBind.host, allowedHosts: config.mgmtAllowedHosts });
    const server = await startMgmtServer({
      host: config.mgmtBind.host,
      port: config.mgmtBind.port,
      token: config.mgmtToken,
      tls: { certPem: identity.tls.certPem, keyPem: identity.tls.keyPem },
      fetch: mgmt.app.fetch,
      log: log.child("mgmt"),
    });
    mgmtPort = server.port;
    lifecycle.onShutdown("management API", () => server.shutdown());
    // The 14-day certificate rotates while running; new HTTPS connections get the new one at once.
    const tlsRotation = startTlsRotation({
      dir: config.configDir,
      current: identity.tls,
      log: log.child("identity"),
      onRotated: (tls) => {
        identity.tls = tls;
        server.setTls({ certPem: tls.certPem, keyPem: tls.keyPem });
      },
    });
    lifecycle.onShutdown("TLS rotation", () => tlsRotation.stop());
    // Lets local tools find the API (the original writes the same file).
    writeSecretFile(`${config.configDir}/mgmt-endpoint`, `PUNKTFUNK_MGMT_URL=${server.url}\n`);
    log.info("punktfunk host ready", {
      version: VERSION,
      config_dir: config.configDir,
      token: config.mgmtTokenSource,
    });
    if (config.gamestream.enabled) startSpeedMeasurement(advertiser, lifecycle, log);
    return { config, identity, mgmtUrl: server.url, encoders, codecs: advertiser, lifecycle };
  } catch (error) {
    await lifecycle.shutdown("start-up failed");
    throw error;
  }
}

/**
 * Measures the encoders whose advertising waits on a figure, after the API listens (about 2 s of
 * both cores per codec at 720p60); until it ends, only what is known to keep up is advertised.
 * Shutdown waits for the native call in flight (the library must not be unloaded under it).
 */
function startSpeedMeasurement(advertiser: CodecAdvertiser, lifecycle: Lifecycle, log: Logger): void {
  const pending = advertiser.toMeasure();
  if (pending.length === 0) return;
  log.info("measuring encoder speed in the background", { codecs: pending.join(","), mode: advertiser.mode });
  const measuring = advertiser.measureMissing(() => lifecycle.shuttingDown);
  lifecycle.onShutdown("encoder speed measurement", () => measuring);
}

/** XTest on the X display when one answers, else the recording backend (the session never fails for it). */
async function openInputBackend(
  native: NativeCore,
  display: string | null,
  log: Logger,
): Promise<InputInjector> {
  if (display) {
    try {
      const injector = await X11InputInjector.open(native, display, log);
      log.info("input goes to the X display through XTest", { display });
      return injector;
    } catch (error) {
      log.warn("X11 input unavailable; recording input instead", { display, reason: String(error) });
    }
  }
  return new RecordingInjector(log);
}
