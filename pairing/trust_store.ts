/**
 * Trust stores in the state database: GameStream clients pinned by certificate fingerprint, and
 * native punktfunk/1 devices pinned by device-key fingerprint.
 */
import type { StateDb } from "../host/state_db.ts";

export interface GameStreamClientRecord {
  fingerprint: string;
  certDer: Uint8Array;
  subject: string | null;
  notBeforeUnix: number | null;
  notAfterUnix: number | null;
  deviceName: string | null;
  pairedAtUnix: number;
}

interface GameStreamRow {
  fingerprint: string;
  cert_der: Uint8Array;
  subject: string | null;
  not_before_unix: number | null;
  not_after_unix: number | null;
  device_name: string | null;
  paired_at_unix: number;
}

export class GameStreamTrustStore {
  constructor(readonly db: StateDb) {}

  list(): GameStreamClientRecord[] {
    return this.db.all<GameStreamRow>("SELECT * FROM gamestream_clients ORDER BY paired_at_unix, fingerprint")
      .map((row) => ({
        fingerprint: row.fingerprint,
        certDer: new Uint8Array(row.cert_der),
        subject: row.subject,
        notBeforeUnix: row.not_before_unix,
        notAfterUnix: row.not_after_unix,
        deviceName: row.device_name,
        pairedAtUnix: row.paired_at_unix,
      }));
  }

  count(): number {
    return this.db.get<{ n: number }>("SELECT count(*) AS n FROM gamestream_clients")!.n;
  }

  isPaired(fingerprint: string): boolean {
    return this.db.get("SELECT 1 AS one FROM gamestream_clients WHERE fingerprint = ?", fingerprint) !==
      undefined;
  }

  /** Pins a client; pairing the same certificate again refreshes its record. */
  add(record: GameStreamClientRecord): void {
    this.db.transaction(() => {
      this.db.run(
        `INSERT INTO gamestream_clients
           (fingerprint, cert_der, subject, not_before_unix, not_after_unix, device_name, paired_at_unix)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (fingerprint) DO UPDATE SET
           cert_der = excluded.cert_der, subject = excluded.subject,
           not_before_unix = excluded.not_before_unix, not_after_unix = excluded.not_after_unix,
           device_name = excluded.device_name, paired_at_unix = excluded.paired_at_unix`,
        record.fingerprint,
        record.certDer,
        record.subject,
        record.notBeforeUnix,
        record.notAfterUnix,
        record.deviceName,
        record.pairedAtUnix,
      );
    });
  }

  /** False when no client had that fingerprint. */
  remove(fingerprint: string): boolean {
    return this.db.transaction(() =>
      this.db.run("DELETE FROM gamestream_clients WHERE fingerprint = ?", fingerprint).changes > 0
    );
  }
}

export interface NativeClientRecord {
  fingerprint: string;
  publicKey: Uint8Array;
  name: string;
  pairedAtUnix: number;
}

export class NativeTrustStore {
  constructor(readonly db: StateDb) {}

  list(): NativeClientRecord[] {
    return this.db.all<{ fingerprint: string; public_key: Uint8Array; name: string; paired_at_unix: number }>(
      "SELECT * FROM native_clients ORDER BY paired_at_unix, fingerprint",
    ).map((row) => ({
      fingerprint: row.fingerprint,
      publicKey: new Uint8Array(row.public_key),
      name: row.name,
      pairedAtUnix: row.paired_at_unix,
    }));
  }

  count(): number {
    return this.db.get<{ n: number }>("SELECT count(*) AS n FROM native_clients")!.n;
  }

  add(record: NativeClientRecord): void {
    this.db.transaction(() => {
      this.db.run(
        `INSERT INTO native_clients (fingerprint, public_key, name, paired_at_unix) VALUES (?, ?, ?, ?)
         ON CONFLICT (fingerprint) DO UPDATE SET
           public_key = excluded.public_key, name = excluded.name, paired_at_unix = excluded.paired_at_unix`,
        record.fingerprint,
        record.publicKey,
        record.name,
        record.pairedAtUnix,
      );
    });
  }

  remove(fingerprint: string): boolean {
    return this.db.transaction(() =>
      this.db.run("DELETE FROM native_clients WHERE fingerprint = ?", fingerprint).changes > 0
    );
  }
}
