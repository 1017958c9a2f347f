/** In-memory `MgmtDeps` for tests of the management API (no host, no native core, no ports). */
import type { MgmtDeps } from "./deps.ts";
import type { NativeClient, NativePairStatus, PairedClient, PairingCeremony } from "./schemas.ts";
import { Logger } from "../host/log.ts";

export interface FakeState {
  pinPending: boolean;
  /** When set, the waiting ceremonies (pinPending is then ignored): a PIN names one of them. */
  ceremonies?: PairingCeremony[];
  submittedPins: string[];
  /** The ceremony each submitted PIN went to. */
  submittedTo: string[];
  clients: PairedClient[];
  nativeClients: NativeClient[];
  nativeEnabled: boolean;
  armedTtl?: number;
  streaming: boolean;
  idrRequests: number;
  stopRequests: number;
  logLines: string[];
}

export function fakeDeps(token?: string): { deps: MgmtDeps; state: FakeState } {
  const state: FakeState = {
    pinPending: false,
    submittedPins: [],
    submittedTo: [],
    clients: [{
      fingerprint: "ab".repeat(32),
      subject: "CN=NVIDIA GameStream Client",
      not_before_unix: 1_700_000_000,
      not_after_unix: 2_300_000_000,
    }],
    nativeClients: [{ name: "Living Room", fingerprint: "cd".repeat(32) }],
    nativeEnabled: false,
    streaming: false,
    idrRequests: 0,
    stopRequests: 0,
    logLines: [],
  };
  const nativeStatus = (): NativePairStatus => ({
    enabled: state.nativeEnabled,
    armed: state.armedTtl !== undefined,
    pin: state.armedTtl !== undefined ? "4321" : null,
    expires_in_secs: state.armedTtl ?? null,
    paired_clients: state.nativeClients.length,
  });
  const log = new Logger("test", {
    level: "debug",
    format: "json",
    sink: (line) => state.logLines.push(line),
  });
  const deps: MgmtDeps = {
    token,
    log,
    health: () => ({ status: "ok", version: "0.0.0-test", abi_version: 1 }),
    hostInfo: () => ({
      hostname: "testhost",
      uniqueid: "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0",
      local_ip: "192.0.2.10",
      version: "0.0.0-test",
      abi_version: 1,
      app_version: "7.1.431.-1",
      gfe_version: "3.23.0.74",
      codecs: ["h264"],
      ports: {
        mgmt: 47990,
        http: 47989,
        https: 47984,
        rtsp: 48010,
        video: 47998,
        control: 47999,
        audio: 48000,
      },
    }),
    status: () => ({
      video_streaming: state.streaming,
      audio_streaming: state.streaming,
      pin_pending: state.pinPending,
      paired_clients: state.clients.length,
      session: state.streaming ? { width: 1280, height: 720, fps: 60 } : null,
      stream: state.streaming
        ? {
          width: 1280,
          height: 720,
          fps: 60,
          bitrate_kbps: 20000,
          packet_size: 1024,
          min_fec: 2,
          codec: "h264",
        }
        : null,
    }),
    compositors: () => [],
    gamestream: {
      pinPending: () => state.ceremonies ? state.ceremonies.length > 0 : state.pinPending,
      waitingCeremonies: () => state.ceremonies ?? [],
      cancelCeremony: (id: string) => {
        const index = (state.ceremonies ?? []).findIndex((c) => c.id === id);
        if (index < 0) return false;
        state.ceremonies!.splice(index, 1);
        return true;
      },
      submitPin: (pin, ceremonyId) => {
        if (state.ceremonies) {
          if (ceremonyId === undefined && state.ceremonies.length > 1) {
            return { kind: "ambiguous", waiting: state.ceremonies };
          }
          const target = ceremonyId === undefined
            ? state.ceremonies[0]
            : state.ceremonies.find((c) => c.id === ceremonyId);
          if (!target) {
            return ceremonyId === undefined ? { kind: "no-handshake" } : { kind: "unknown-ceremony" };
          }
          if (state.submittedPins.includes(pin)) return { kind: "refused", reason: "PIN already delivered" };
          state.submittedPins.push(pin);
          state.submittedTo.push(target.id);
          state.ceremonies = state.ceremonies.filter((c) => c !== target);
          return { kind: "delivered" };
        }
        if (!state.pinPending) return { kind: "no-handshake" };
        state.submittedPins.push(pin);
        state.pinPending = false;
        return { kind: "delivered" };
      },
      listClients: () => state.clients,
      unpairClient: (fingerprint) => {
        const before = state.clients.length;
        state.clients = state.clients.filter((c) => c.fingerprint !== fingerprint);
        return state.clients.length < before;
      },
      stopSession: () => {
        state.stopRequests++;
        state.streaming = false;
      },
      requestIdr: () => state.streaming && ++state.idrRequests > 0,
    },
    native: {
      get enabled() {
        return state.nativeEnabled;
      },
      status: nativeStatus,
      arm: (ttl) => {
        state.armedTtl = ttl;
        return nativeStatus();
      },
      disarm: () => {
        state.armedTtl = undefined;
      },
      listClients: () => state.nativeClients,
      unpairClient: (fingerprint) => {
        const before = state.nativeClients.length;
        state.nativeClients = state.nativeClients.filter((c) => c.fingerprint !== fingerprint);
        return state.nativeClients.length < before;
      },
    },
  };
  return { deps, state };
}
