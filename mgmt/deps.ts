/**
 * What the management API needs from the rest of the host. Each plane supplies its part; tests
 * pass small in-memory implementations and call the app with `app.request()`, no port needed.
 */
import type {
  AvailableCompositor,
  Health,
  HostInfo,
  NativeClient,
  NativePairStatus,
  PairedClient,
  PairingCeremony,
  RuntimeStatus,
} from "./schemas.ts";
import type { Logger } from "../host/log.ts";

/** What became of a submitted PIN. */
export type SubmitPinOutcome =
  | { kind: "delivered" }
  | { kind: "invalid-pin" }
  /** No pairing ceremony is waiting for a PIN. */
  | { kind: "no-handshake" }
  /** More than one ceremony waits and none was named. */
  | { kind: "ambiguous"; waiting: PairingCeremony[] }
  /** The named ceremony id was never issued (or is long forgotten). */
  | { kind: "unknown-ceremony" }
  /** The named ceremony no longer waits, or these digits were already delivered once. */
  | { kind: "refused"; reason: string };

export interface GameStreamControl {
  pinPending(): boolean;
  /** Ceremonies waiting for a PIN, oldest first. */
  waitingCeremonies(): PairingCeremony[];
  /** Delivers the PIN to the named ceremony, or to the only waiting one when `ceremonyId` is absent. */
  submitPin(pin: string, ceremonyId?: string): SubmitPinOutcome;
  /** Ends the ceremony with this id (waiting for the PIN or past it); false when none has it. */
  cancelCeremony(ceremonyId: string): boolean;
  listClients(): PairedClient[];
  /** Removes the client and ends its live session; false when no such client. */
  unpairClient(fingerprint: string): boolean;
  /** Idempotent. */
  stopSession(): void;
  /** False when no video stream is active. */
  requestIdr(): boolean;
}

export interface NativeControl {
  /** False while this host runs no punktfunk/1 listener. */
  readonly enabled: boolean;
  status(): NativePairStatus;
  arm(ttlSecs: number): NativePairStatus;
  disarm(): void;
  listClients(): NativeClient[];
  unpairClient(fingerprint: string): boolean;
}

export interface MgmtDeps {
  /** Bearer token; when undefined every route is open (allowed on loopback binds only). */
  token?: string;
  log: Logger;
  health(): Health;
  hostInfo(): HostInfo;
  status(): RuntimeStatus;
  compositors(): AvailableCompositor[];
  gamestream: GameStreamControl;
  native: NativeControl;
}
