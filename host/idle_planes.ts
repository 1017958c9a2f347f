/**
 * The management API's view of planes that are not running in this process: GameStream without
 * `--gamestream` (no ceremony can wait for a PIN, no stream exists) and punktfunk/1 before its
 * listener exists. Both still serve their trust stores, so paired devices stay manageable.
 */
import type { GameStreamControl, NativeControl } from "../mgmt/mod.ts";
import type { GameStreamTrustStore, NativeTrustStore } from "../pairing/mod.ts";

export function idleGameStreamControl(store: GameStreamTrustStore): GameStreamControl {
  return {
    pinPending: () => false,
    waitingCeremonies: () => [],
    cancelCeremony: () => false,
    submitPin: () => ({ kind: "no-handshake" }),
    listClients: () =>
      store.list().map((client) => ({
        fingerprint: client.fingerprint,
        subject: client.subject,
        not_before_unix: client.notBeforeUnix,
        not_after_unix: client.notAfterUnix,
      })),
    unpairClient: (fingerprint) => store.remove(fingerprint),
    stopSession: () => {},
    requestIdr: () => false,
  };
}

export function idleNativeControl(store: NativeTrustStore): NativeControl {
  return {
    enabled: false,
    status: () => ({
      enabled: false,
      armed: false,
      pin: null,
      expires_in_secs: null,
      paired_clients: store.count(),
    }),
    arm: () => {
      throw new Error("native host is not enabled");
    },
    disarm: () => {},
    listClients: () => store.list().map(({ name, fingerprint }) => ({ name, fingerprint })),
    unpairClient: (fingerprint) => store.remove(fingerprint),
  };
}
