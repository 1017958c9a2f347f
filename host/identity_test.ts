import { assert, assertEquals, assertNotEquals, assertThrows } from "../tests/assert.ts";
import { loadOrCreateIdentity, TLS_CERT_DAYS } from "./identity.ts";
import { createSelfSignedCertificate } from "./x509.ts";

const DAY = 86_400_000;

function withDir(fn: (dir: string) => void): () => void {
  return () => {
    const root = Deno.makeTempDirSync();
    try {
      fn(`${root}/punktfunk`);
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  };
}

const mode = (path: string) => Deno.statSync(path).mode! & 0o777;

Deno.test(
  "first start creates owner-only identity files; the next start loads the same identity",
  withDir((dir) => {
    const first = loadOrCreateIdentity(dir, { hostname: "box" });
    assertEquals(mode(dir), 0o700);
    for (
      const name of ["uniqueid", "gamestream-cert.pem", "gamestream-key.pem", "host-cert.pem", "host-key.pem"]
    ) {
      assertEquals(mode(`${dir}/${name}`), 0o600, name);
    }
    assert(/^[0-9A-F-]{36}$/.test(first.uniqueId));
    assertEquals(first.gamestream.summary.keyType, "rsa");
    assertEquals(first.tls.summary.keyType, "ec");
    const tlsDays = (first.tls.summary.notAfter.getTime() - Date.now()) / DAY;
    assert(
      tlsDays <= TLS_CERT_DAYS && tlsDays > TLS_CERT_DAYS - 1,
      "TLS cert lives 14 days (Chromium's limit)",
    );
    assert((first.gamestream.summary.notAfter.getTime() - Date.now()) / DAY > 365 * 19);

    const second = loadOrCreateIdentity(dir, { hostname: "box" });
    assertEquals(second.uniqueId, first.uniqueId);
    assertEquals(second.gamestream.summary.fingerprint, first.gamestream.summary.fingerprint);
    assertEquals(second.tls.summary.fingerprint, first.tls.summary.fingerprint);
  }),
);

Deno.test(
  "the TLS certificate rotates near expiry; the GameStream one never does",
  withDir((dir) => {
    const first = loadOrCreateIdentity(dir, { hostname: "box" });
    const later = loadOrCreateIdentity(dir, { hostname: "box", now: new Date(Date.now() + 12 * DAY) });
    assertNotEquals(later.tls.summary.fingerprint, first.tls.summary.fingerprint);
    assertEquals(later.gamestream.summary.fingerprint, first.gamestream.summary.fingerprint);
    assertEquals(later.uniqueId, first.uniqueId);
  }),
);

Deno.test(
  "corrupt or partial state is a clear error and is left untouched",
  withDir((dir) => {
    loadOrCreateIdentity(dir, { hostname: "box" });
    Deno.writeTextFileSync(`${dir}/uniqueid`, "garbage\n");
    assertThrows(() => loadOrCreateIdentity(dir), /uniqueid is corrupt/);
    assertEquals(Deno.readTextFileSync(`${dir}/uniqueid`), "garbage\n");
    Deno.writeTextFileSync(`${dir}/uniqueid`, crypto.randomUUID().toUpperCase());

    const certBefore = Deno.readTextFileSync(`${dir}/gamestream-cert.pem`);
    Deno.writeTextFileSync(
      `${dir}/gamestream-cert.pem`,
      "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
    );
    assertThrows(() => loadOrCreateIdentity(dir), /gamestream-cert\.pem is corrupt/);
    Deno.writeTextFileSync(`${dir}/gamestream-cert.pem`, certBefore);

    const other = createSelfSignedCertificate({
      kind: "rsa2048",
      commonName: "x",
      notAfter: new Date(Date.now() + DAY),
    });
    const keyBefore = Deno.readTextFileSync(`${dir}/gamestream-key.pem`);
    Deno.writeTextFileSync(`${dir}/gamestream-key.pem`, other.keyPem);
    assertThrows(() => loadOrCreateIdentity(dir), /does not belong/);
    Deno.writeTextFileSync(`${dir}/gamestream-key.pem`, keyBefore);

    Deno.removeSync(`${dir}/gamestream-key.pem`);
    assertThrows(() => loadOrCreateIdentity(dir), /gamestream-key\.pem is missing/);
    assertEquals(
      Deno.readTextFileSync(`${dir}/gamestream-cert.pem`),
      certBefore,
      "cert kept, not regenerated",
    );
  }),
);

Deno.test(
  "loose permissions are tightened on load",
  withDir((dir) => {
    loadOrCreateIdentity(dir, { hostname: "box" });
    Deno.chmodSync(`${dir}/host-key.pem`, 0o644);
    Deno.chmodSync(dir, 0o755);
    loadOrCreateIdentity(dir, { hostname: "box" });
    assertEquals(mode(`${dir}/host-key.pem`), 0o600);
    assertEquals(mode(dir), 0o700);
  }),
);
