import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { StateDb } from "../host/state_db.ts";
import { GameStreamTrustStore, NativeTrustStore } from "./trust_store.ts";

function withDb(fn: (db: StateDb, path: string) => void): () => void {
  return () => {
    const dir = Deno.makeTempDirSync();
    const db = StateDb.open(`${dir}/state.db`);
    try {
      fn(db, `${dir}/state.db`);
    } finally {
      db.close();
      Deno.removeSync(dir, { recursive: true });
    }
  };
}

const client = (n: number) => ({
  fingerprint: n.toString(16).padStart(64, "0"),
  certDer: Uint8Array.of(1, 2, n),
  subject: `CN=client ${n}`,
  notBeforeUnix: 1,
  notAfterUnix: 2,
  deviceName: null,
  pairedAtUnix: 100 + n,
});

Deno.test(
  "GameStream store: add, list in pairing order, re-pair refreshes, remove, persists",
  withDb((db, path) => {
    const store = new GameStreamTrustStore(db);
    store.add(client(2));
    store.add(client(1));
    assertEquals(store.list().map((c) => c.subject), ["CN=client 1", "CN=client 2"]);
    store.add({ ...client(1), subject: "CN=renewed" });
    assertEquals(store.count(), 2);
    assert(store.isPaired(client(1).fingerprint));
    assertEquals(store.list()[0].certDer, Uint8Array.of(1, 2, 1));
    assert(store.remove(client(2).fingerprint));
    assert(!store.remove(client(2).fingerprint));
    const reopened = StateDb.open(path);
    assertEquals(new GameStreamTrustStore(reopened).list().map((c) => c.subject), ["CN=renewed"]);
    reopened.close();
  }),
);

Deno.test(
  "stores refuse malformed fingerprints at the schema level",
  withDb((db) => {
    assertThrows(
      () => new GameStreamTrustStore(db).add({ ...client(1), fingerprint: "abc" }),
      /CHECK constraint/,
    );
    assertThrows(
      () =>
        new NativeTrustStore(db).add({
          fingerprint: "x",
          publicKey: new Uint8Array(32),
          name: "n",
          pairedAtUnix: 1,
        }),
      /CHECK constraint/,
    );
  }),
);

Deno.test(
  "native store: add, list, remove",
  withDb((db) => {
    const store = new NativeTrustStore(db);
    store.add({ fingerprint: "a".repeat(64), publicKey: new Uint8Array(32), name: "iPad", pairedAtUnix: 5 });
    assertEquals(store.list().map((c) => c.name), ["iPad"]);
    assertEquals(store.count(), 1);
    assert(store.remove("a".repeat(64)));
    assertEquals(store.count(), 0);
  }),
);
