/**
 * The host's persistent identity under the config dir: a `uniqueid` and two certificates —
 * RSA-2048 for GameStream (Moonlight expects RSA and pins it at pairing, so it lives 20 years) and
 * ECDSA P-256 for QUIC/HTTPS/WebTransport (Chromium's certificate-hash pinning accepts at most 14
 * days of validity, so it rotates). Missing pieces are created; unreadable or corrupt ones are a
 * clear error, never a silent reset (that would unpair every client).
 */
import { createSelfSignedCertificate, keyMatchesCertificate, parseCertificatePem } from "./x509.ts";
import type { CertificateSummary, KeyKind } from "./x509.ts";
import type { Logger } from "./log.ts";

export interface CertificateFiles {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
  summary: CertificateSummary;
}

export interface HostIdentity {
  uniqueId: string;
  gamestream: CertificateFiles;
  tls: CertificateFiles;
}

const UNIQUE_ID_PATTERN = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/;
const DAY_MS = 86_400_000;
export const GAMESTREAM_CERT_DAYS = 20 * 365;
export const TLS_CERT_DAYS = 14;
/** Rotate the TLS certificate once fewer than this many days remain, so clients see a fresh one. */
export const TLS_ROTATE_BELOW_DAYS = 3;

export class IdentityError extends Error {
  override name = "IdentityError";
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw new IdentityError(`cannot stat ${path}: ${(error as Error).message}`);
  }
}

function readText(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new IdentityError(`cannot read ${path}: ${(error as Error).message}`);
  }
}

/**
 * Writes owner-only (0600) so that after a crash or power loss the file holds either the old or the
 * new content, never half or none: write a new temp file, fsync it, rename it over the target, fsync
 * the directory (the rename itself lives in the directory's metadata).
 */
export function writeSecretFile(path: string, content: string): void {
  const temp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    // createNew (O_EXCL): never follows a symlink planted at the temp name.
    const file = Deno.openSync(temp, { write: true, createNew: true, mode: 0o600 });
    try {
      Deno.chmodSync(temp, 0o600); // the umask may only have narrowed it; make it exact
      const bytes = new TextEncoder().encode(content);
      for (let written = 0; written < bytes.length;) written += file.writeSync(bytes.subarray(written));
      file.syncSync();
    } finally {
      file.close();
    }
    Deno.renameSync(temp, path);
  } catch (error) {
    try {
      Deno.removeSync(temp);
    } catch { /* never created, or already renamed */ }
    throw error;
  }
  const slash = path.lastIndexOf("/");
  const directory = Deno.openSync(slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".", { read: true });
  try {
    directory.syncSync();
  } finally {
    directory.close();
  }
}

/** Creates the config dir owner-only; tightens an existing one that others can read. */
export function ensureConfigDir(dir: string, log?: Logger): void {
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const mode = Deno.statSync(dir).mode;
  if (mode !== null && (mode & 0o077) !== 0) {
    Deno.chmodSync(dir, 0o700);
    log?.warn("config dir was accessible to other users; restricted it to the owner", { dir });
  }
}

function tightenMode(path: string, log?: Logger): void {
  const mode = Deno.statSync(path).mode;
  if (mode !== null && (mode & 0o077) !== 0) {
    Deno.chmodSync(path, 0o600);
    log?.warn("secret file was accessible to other users; restricted it to the owner", { path });
  }
}

function loadOrCreateUniqueId(dir: string, log?: Logger): string {
  const path = `${dir}/uniqueid`;
  if (!exists(path)) {
    const id = crypto.randomUUID().toUpperCase();
    writeSecretFile(path, id + "\n");
    log?.info("created host uniqueid", { path });
    return id;
  }
  const id = readText(path).trim();
  if (!UNIQUE_ID_PATTERN.test(id)) {
    throw new IdentityError(
      `${path} is corrupt (expected an upper-case UUID). Restore it from a backup; deleting it ` +
        `gives the host a new identity and clients must pair again.`,
    );
  }
  return id;
}

function loadCertificatePair(
  certPath: string,
  keyPath: string,
  log?: Logger,
): CertificateFiles | undefined {
  const haveCert = exists(certPath);
  const haveKey = exists(keyPath);
  if (!haveCert && !haveKey) return undefined;
  if (haveCert !== haveKey) {
    throw new IdentityError(
      `${haveCert ? keyPath : certPath} is missing while ${haveCert ? certPath : keyPath} exists. ` +
        `Restore it, or delete both to create a new identity (clients must pair again).`,
    );
  }
  const certPem = readText(certPath);
  const keyPem = readText(keyPath);
  let summary: CertificateSummary;
  try {
    summary = parseCertificatePem(certPem);
  } catch (error) {
    throw new IdentityError(`${certPath} is corrupt: ${(error as Error).message}`);
  }
  let matches: boolean;
  try {
    matches = keyMatchesCertificate(keyPem, certPem);
  } catch (error) {
    throw new IdentityError(`${keyPath} is corrupt: ${(error as Error).message}`);
  }
  if (!matches) throw new IdentityError(`${keyPath} does not belong to ${certPath}`);
  tightenMode(keyPath, log);
  return { certPath, keyPath, certPem, keyPem, summary };
}

function createCertificatePair(
  certPath: string,
  keyPath: string,
  kind: KeyKind,
  commonName: string,
  days: number,
  now: Date,
  hostname: string,
): CertificateFiles {
  const generated = createSelfSignedCertificate({
    kind,
    commonName,
    notBefore: new Date(now.getTime() - 3600_000),
    notAfter: new Date(now.getTime() + days * DAY_MS),
    dnsNames: kind === "p256" ? [...new Set(["localhost", hostname])] : undefined,
    ipAddresses: kind === "p256" ? ["127.0.0.1", "::1"] : undefined,
  });
  // Key first: a crash between the two writes leaves "key without cert", which load reports.
  writeSecretFile(keyPath, generated.keyPem);
  writeSecretFile(certPath, generated.certPem);
  return {
    certPath,
    keyPath,
    certPem: generated.certPem,
    keyPem: generated.keyPem,
    summary: parseCertificatePem(generated.certPem),
  };
}

export function loadOrCreateIdentity(
  dir: string,
  options: { now?: Date; hostname?: string; log?: Logger } = {},
): HostIdentity {
  const now = options.now ?? new Date();
  const hostname = options.hostname ?? Deno.hostname();
  const log = options.log;
  ensureConfigDir(dir, log);
  const uniqueId = loadOrCreateUniqueId(dir, log);

  const gsCert = `${dir}/gamestream-cert.pem`;
  const gsKey = `${dir}/gamestream-key.pem`;
  let gamestream = loadCertificatePair(gsCert, gsKey, log);
  if (!gamestream) {
    gamestream = createCertificatePair(
      gsCert,
      gsKey,
      "rsa2048",
      "punktfunk GameStream host",
      GAMESTREAM_CERT_DAYS,
      now,
      hostname,
    );
    log?.info("created GameStream certificate", { fingerprint: gamestream.summary.fingerprint });
  }

  const tlsCert = `${dir}/host-cert.pem`;
  const tlsKey = `${dir}/host-key.pem`;
  const loaded = loadCertificatePair(tlsCert, tlsKey, log);
  const tls = loaded && !tlsRotationDue(loaded.summary, now)
    ? loaded
    : createTlsCertificate(dir, now, hostname);
  if (tls !== loaded) {
    log?.info(loaded ? "rotated TLS certificate" : "created TLS certificate", {
      fingerprint: tls.summary.fingerprint,
      not_after: tls.summary.notAfter.toISOString(),
    });
  }
  return { uniqueId, gamestream, tls };
}

/** True once fewer than `TLS_ROTATE_BELOW_DAYS` of the certificate's validity remain at `now`. */
export function tlsRotationDue(summary: CertificateSummary, now: Date): boolean {
  return (summary.notAfter.getTime() - now.getTime()) / DAY_MS < TLS_ROTATE_BELOW_DAYS;
}

function createTlsCertificate(dir: string, now: Date, hostname: string): CertificateFiles {
  return createCertificatePair(
    `${dir}/host-cert.pem`,
    `${dir}/host-key.pem`,
    "p256",
    "punktfunk host",
    TLS_CERT_DAYS,
    now,
    hostname,
  );
}

/**
 * How often a running host checks its TLS certificate: rotation starts 3 days before expiry, so an hourly
 * check rotates with almost all of that margin left, at the cost of one date comparison per hour.
 */
export const TLS_ROTATION_CHECK_MS = 3_600_000;

export interface TlsRotationOptions {
  dir: string;
  current: CertificateFiles;
  /** Called with the new certificate after it is on disk; the servers start handing it out. */
  onRotated(tls: CertificateFiles): void;
  now?: () => Date;
  hostname?: string;
  intervalMs?: number;
  log?: Logger;
}

/**
 * Rotates the TLS certificate while the host runs (it used to rotate only at start-up, so a host running for
 * two weeks served an expired certificate). A failed rotation is logged and retried at the next check.
 */
export function startTlsRotation(
  options: TlsRotationOptions,
): { check(): CertificateFiles | null; stop(): void } {
  let current = options.current;
  const check = (): CertificateFiles | null => {
    const now = options.now?.() ?? new Date();
    if (!tlsRotationDue(current.summary, now)) return null;
    try {
      current = createTlsCertificate(options.dir, now, options.hostname ?? Deno.hostname());
    } catch (error) {
      options.log?.error("TLS certificate rotation failed; retrying at the next check", {
        error: (error as Error).message,
      });
      return null;
    }
    options.log?.info("rotated TLS certificate", {
      fingerprint: current.summary.fingerprint,
      not_after: current.summary.notAfter.toISOString(),
    });
    try {
      options.onRotated(current);
    } catch (error) {
      options.log?.error("serving the rotated TLS certificate failed", { error: (error as Error).message });
    }
    return current;
  };
  const timer = setInterval(check, options.intervalMs ?? TLS_ROTATION_CHECK_MS);
  return { check, stop: () => clearInterval(timer) };
}
