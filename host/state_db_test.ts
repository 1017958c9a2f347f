import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { MIGRATIONS, StateDb } from "./state_db.ts";

function tempPath(): { path: string; cleanup: () => void } {
  const dir = Deno.makeTempDirSync();
  return { path: `${dir}/state.db`, cleanup: () => Deno.removeSync(dir, { recursive: true }) };
}

Deno.test("a new database is migrated to the latest schema in WAL mode and reopens", () => {
  const { path, cleanup } = tempPath();
  try {
    const db = StateDb.open(path);
    assertEquals(db.schemaVersion, MIGRATIONS.length);
    assertEquals(db.get<{ journal_mode: string }>("PRAGMA journal_mode")?.journal_mode, "wal");
    db.run("INSERT INTO settings (key, value) VALUES ('a', '1')");
    db.close();
    const again = StateDb.open(path);
    assertEquals(again.get<{ value: string }>("SELECT value FROM settings WHERE key = 'a'")?.value, "1");
    again.close();
  } finally {
    cleanup();
  }
});

Deno.test("a failing transaction leaves nothing behind", () => {
  const { path, cleanup } = tempPath();
  try {
    const db = StateDb.open(path);
    assertThrows(() =>
      db.transaction(() => {
        db.run("INSERT INTO settings (key, value) VALUES ('x', '1')");
        throw new Error("crash in the middle");
      }), /crash/);
    assertEquals(db.all("SELECT * FROM settings"), []);
    db.close();
  } finally {
    cleanup();
  }
});

Deno.test("a failing migration rolls back and the version stays put", () => {
  const { path, cleanup } = tempPath();
  try {
    StateDb.open(path, MIGRATIONS).close();
    assertThrows(() =>
      StateDb.open(path, [...MIGRATIONS, "CREATE TABLE t (a); SELECT nonsense FROM nowhere;"])
    );
    const db = StateDb.open(path, MIGRATIONS);
    assertEquals(db.schemaVersion, MIGRATIONS.length);
    assertEquals(db.all("SELECT name FROM sqlite_master WHERE name = 't'"), []);
    db.close();
  } finally {
    cleanup();
  }
});

Deno.test("a corrupt file is a clear error and is not modified", () => {
  const { path, cleanup } = tempPath();
  try {
    const junk = "definitely not sqlite ".repeat(500);
    Deno.writeTextFileSync(path, junk);
    assertThrows(() => StateDb.open(path), /unreadable or corrupt.*move the file aside/);
    assertEquals(Deno.readTextFileSync(path), junk);
  } finally {
    cleanup();
  }
});

Deno.test("a database from a newer build is refused", () => {
  const { path, cleanup } = tempPath();
  try {
    StateDb.open(path, [...MIGRATIONS, "CREATE TABLE future (a)"]).close();
    const error = assertThrows(() => StateDb.open(path, MIGRATIONS), /newer than this build knows/);
    assert(error.message.includes(path));
  } finally {
    cleanup();
  }
});

Deno.test("state.db, -wal and -shm are 0600 under umask 022, and wider old files are tightened", () => {
  const { path, cleanup } = tempPath();
  try {
    const modes = () =>
      Object.fromEntries(
        ["", "-wal", "-shm"].map((
          suffix,
        ) => [`state.db${suffix}`, Deno.statSync(path + suffix).mode! & 0o777]),
      );
    const db = StateDb.open(path);
    db.run("INSERT INTO settings (key, value) VALUES ('k', 'v')");
    const expected = { "state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600 };
    assertEquals(modes(), expected);
    // An older build's files, readable by everyone, while the store is open (the WAL is kept).
    for (const suffix of ["", "-wal", "-shm"]) Deno.chmodSync(path + suffix, 0o644);
    const again = StateDb.open(path);
    assertEquals(modes(), expected);
    assertEquals(again.get<{ value: string }>("SELECT value FROM settings WHERE key = 'k'")?.value, "v");
    again.close();
    db.close();
  } finally {
    cleanup();
  }
});

Deno.test("state.db, -wal and -shm are 0600 when created under umask 000", async () => {
  const { path, cleanup } = tempPath();
  try {
    const module = new URL("./state_db.ts", import.meta.url).href;
    const script = `import { StateDb } from ${JSON.stringify(module)};\n` +
      `const db = StateDb.open(${JSON.stringify(path)});\n` +
      `db.run("INSERT INTO settings (key, value) VALUES ('k', 'v')");\n` +
      // Hold the store open so the WAL and SHM files exist when the parent looks.
      `console.log(JSON.stringify(["", "-wal", "-shm"].map((s) => Deno.statSync(${
        JSON.stringify(path)
      } + s).mode & 0o777)));\n`;
    const output = await new Deno.Command("sh", {
      args: ["-c", 'umask 000 && exec "$0" eval "$1"', Deno.execPath(), script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(output.success, new TextDecoder().decode(output.stderr));
    assertEquals(JSON.parse(new TextDecoder().decode(output.stdout)), [0o600, 0o600, 0o600]);
  } finally {
    cleanup();
  }
});
