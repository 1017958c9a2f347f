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
  RuntimeStatus,
} from "./schemas.ts";
import type { Logger } from "../host/log.ts";

export interface GameStreamControl {
  pinPending(): boolean;
  /** "no-handshake" when no pairing ceremony is waiting for a PIN. */
  submitPin(pin: string): "delivered" | "no-handshake";
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
