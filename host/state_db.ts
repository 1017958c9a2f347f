/**
 * The host's one SQLite database (`<config dir>/state.db`, WAL): trust stores, settings, and later
 * console users. Schema changes are numbered migrations tracked in `PRAGMA user_version`; every
 * write goes through `transaction`, so a crash at any point leaves a consistent store.
 */
import { DatabaseSync } from "node:sqlite";

/** Append-only: a shipped migration is never edited, only followed by a new one. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE settings (
     key TEXT PRIMARY KEY,
     value TEXT NOT NULL
   ) STRICT;
   CREATE TABLE gamestream_clients (
     fingerprint TEXT PRIMARY KEY CHECK (length(fingerprint) = 64),
     cert_der BLOB NOT NULL,
     subject TEXT,
     not_before_unix INTEGER,
     not_after_unix INTEGER,
     device_name TEXT,
     paired_at_unix INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE native_clients (
     fingerprint TEXT PRIMARY KEY CHECK (length(fingerprint) = 64),
     public_key BLOB NOT NULL,
     name TEXT NOT NULL,
     paired_at_unix INTEGER NOT NULL
   ) STRICT;`,
  // Encoder speed measurements (host/codec_speed.ts): one per codec, encoder, mode and machine;
  // `result` is the native benchmark's JSON.
  `CREATE TABLE encoder_speed (
     codec TEXT NOT NULL CHECK (codec IN ('h264', 'hevc', 'av1')),
     encoder TEXT NOT NULL,
     width INTEGER NOT NULL,
     height INTEGER NOT NULL,
     fps INTEGER NOT NULL,
     libraries TEXT NOT NULL,
     cpu_model TEXT NOT NULL,
     cores INTEGER NOT NULL,
     result TEXT NOT NULL,
     load_1min REAL NOT NULL,
     measured_at_unix INTEGER NOT NULL,
     PRIMARY KEY (codec, encoder, width, height, fps, libraries, cpu_model, cores)
   ) STRICT;`,
];

export class StateDbError extends Error {
  override name = "StateDbError";
}

/**
 * Creates the database file 0600 (whatever the umask) before SQLite opens it, and tightens one that
 * exists. SQLite creates `-wal` and `-shm` with the database file's mode, so they follow; an empty
 * file is a valid new database.
 */
function createOwnerOnly(path: string): void {
  Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 }).close();
  Deno.chmodSync(path, 0o600);
}

/** `-wal`/`-shm` left by an older build may be wider than 0600; SQLite keeps their mode, so fix it. */
function tightenCompanions(path: string): void {
  for (const suffix of ["-wal", "-shm"]) {
    try {
      Deno.chmodSync(path + suffix, 0o600);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
}

export class StateDb {
  readonly #db: DatabaseSync;
  #inTransaction = false;

  private constructor(readonly path: string, db: DatabaseSync) {
    this.#db = db;
  }

  /** Opens (creating if absent) and migrates; a corrupt or newer-than-known file is an error. */
  static open(path: string, migrations: readonly string[] = MIGRATIONS): StateDb {
    let db: DatabaseSync | undefined;
    try {
      createOwnerOnly(path);
      db = new DatabaseSync(path);
      db.exec("PRAGMA journal_mode = WAL");
      tightenCompanions(path);
      db.exec("PRAGMA foreign_keys = ON");
      // Waits out a concurrent writer (e.g. a CLI subcommand) instead of failing at once.
      db.exec("PRAGMA busy_timeout = 5000");
      const check = db.prepare("PRAGMA quick_check").get() as { quick_check: string };
      if (check.quick_check !== "ok") throw new Error(`integrity check failed: ${check.quick_check}`);
    } catch (error) {
      db?.close();
      throw new StateDbError(
        `state database ${path} is unreadable or corrupt (${(error as Error).message}). ` +
          `Nothing was changed; move the file aside to start with an empty store (clients must pair again).`,
      );
    }
    const store = new StateDb(path, db);
    try {
      store.#migrate(migrations);
    } catch (error) {
      db.close();
      throw error;
    }
    return store;
  }

  get schemaVersion(): number {
    return (this.#db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
  }

  #migrate(migrations: readonly string[]): void {
    const current = this.schemaVersion;
    if (current > migrations.length) {
      throw new StateDbError(
        `state database ${this.path} has schema version ${current}, newer than this build knows ` +
          `(${migrations.length}); run a newer punktfunk or restore a backup.`,
      );
    }
    for (let version = current; version < migrations.length; version++) {
      this.transaction(() => {
        this.#db.exec(migrations[version]);
        this.#db.exec(`PRAGMA user_version = ${version + 1}`);
      });
    }
  }

  /** Runs `work` atomically; nested calls join the outer transaction. */
  transaction<T>(work: () => T): T {
    if (this.#inTransaction) return work();
    this.#db.exec("BEGIN IMMEDIATE");
    this.#inTransaction = true;
    try {
      const result = work();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    } finally {
      this.#inTransaction = false;
    }
  }

  all<T>(sql: string, ...params: (string | number | bigint | Uint8Array | null)[]): T[] {
    return this.#db.prepare(sql).all(...params) as T[];
  }

  get<T>(sql: string, ...params: (string | number | bigint | Uint8Array | null)[]): T | undefined {
    return this.#db.prepare(sql).get(...params) as T | undefined;
  }

  run(sql: string, ...params: (string | number | bigint | Uint8Array | null)[]): { changes: number } {
    const result = this.#db.prepare(sql).run(...params);
    return { changes: Number(result.changes) };
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}
