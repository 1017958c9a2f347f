/**
 * Where state lives and how `serve` settings resolve: CLI flag > environment (`PUNKTFUNK_*`) >
 * config file (`<config dir>/config.json`) > default. Pure: callers pass env and file contents.
 *
 * Section numbers (§) refer to docs/gamestream-protocol.md.
 */
import { parseLogLevel } from "./log.ts";
import type { LogLevel } from "./log.ts";

export type Env = Record<string, string | undefined>;

export function resolveConfigDir(env: Env): string {
  if (env.PUNKTFUNK_CONFIG_DIR) return env.PUNKTFUNK_CONFIG_DIR;
  if (env.XDG_CONFIG_HOME) return `${env.XDG_CONFIG_HOME}/punktfunk`;
  if (env.HOME) return `${env.HOME}/.config/punktfunk`;
  throw new Error("cannot find a config directory: set PUNKTFUNK_CONFIG_DIR, XDG_CONFIG_HOME or HOME");
}

/** 47990 is the original's management port; 47984–48010 stay free for GameStream. */
export const DEFAULT_MGMT_BIND = "127.0.0.1:47990";

/**
 * A client that drops without /cancel (lid closed, Wi-Fi roam, Moonlight killed or backgrounded on a phone)
 * usually comes back within minutes; 5 minutes covers that, while a session nobody resumes stops holding the
 * host (other clients' /launch is refused while it is kept) soon after.
 */
export const DEFAULT_RESUME_GRACE_SECONDS = 300;
/** A day: beyond that a kept session is forgotten, not paused. */
export const MAX_RESUME_GRACE_SECONDS = 86_400;

export interface ServeFlags {
  mgmtBind?: string;
  mgmtToken?: string;
  mgmtTokenFile?: string;
  /** `--mgmt-allowed-host`, repeatable. */
  mgmtAllowedHosts?: string[];
  logLevel?: string;
  gamestream?: boolean;
  gamestreamPort?: string;
  gamestreamResumeGrace?: string;
  gamestreamAllowSlowCodecs?: boolean;
  x11Display?: string;
}

export interface FileConfig {
  mgmt_bind?: string;
  mgmt_token_file?: string;
  mgmt_allowed_hosts?: string[];
  log_level?: string;
  gamestream_allow_slow_codecs?: boolean;
}

export interface ServeConfig {
  configDir: string;
  mgmtBind: { host: string; port: number };
  /** Where the token came from, for the start-up log line (never the token itself). */
  mgmtTokenSource: "flag" | "env" | "file" | "none";
  mgmtToken?: string;
  mgmtTokenFile?: string;
  /**
   * Extra names the management API answers to (besides loopback names, the bound address and the
   * machine's hostname): what the operator types in a browser to reach it, e.g. a LAN DNS name.
   */
  mgmtAllowedHosts: string[];
  logLevel: LogLevel;
  gamestream: {
    enabled: boolean;
    /** Moonlight's HTTP port; every other GameStream port is derived from it (§1.2). */
    basePort: number;
    bind: string;
    /** X display for "Desktop" capture and XTest input; null uses the synthetic source. */
    x11Display: string | null;
    audioSource: "auto" | "tone" | "pulse";
    mdns: boolean;
    /** How long a session whose client vanished without /cancel is kept for /resume (0: ended at once). */
    resumeGraceSeconds: number;
    /** Advertise HEVC/AV1 even when their software encoder cannot hold the mode (host/codec_speed.ts). */
    allowSlowCodecs: boolean;
  };
}

export function parseBindAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text.trim());
  if (!match) throw new Error(`invalid bind address "${text}" (expected HOST:PORT or [IPv6]:PORT)`);
  const port = Number(match[3]);
  if (port > 65535) throw new Error(`invalid port in "${text}"`);
  return { host: match[1] ?? match[2], port };
}

export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

const FILE_KEYS: Record<string, "string" | "string[]" | "boolean"> = {
  mgmt_bind: "string",
  mgmt_token_file: "string",
  mgmt_allowed_hosts: "string[]",
  log_level: "string",
  gamestream_allow_slow_codecs: "boolean",
};

/** Longest DNS name (RFC 1035); also bounds what an allowed-host entry may be. */
const MAX_HOST_NAME_LENGTH = 253;
const HOST_NAME = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*\.?$/;
const IPV6 = /^\[?([0-9a-f:.]+)\]?$/;

/**
 * One `--mgmt-allowed-host` / `mgmt_allowed_hosts` entry: a DNS name or an IP address, no port (any
 * port is accepted), no wildcard. Returned lower-cased, IPv6 in brackets.
 */
export function parseAllowedHost(text: string): string {
  const name = text.trim().toLowerCase();
  const ipv6 = name.includes(":") ? IPV6.exec(name) : null;
  if (ipv6 && (ipv6[1].match(/:/g) ?? []).length >= 2 && URL.canParse(`http://[${ipv6[1]}]/`)) {
    return `[${ipv6[1]}]`;
  }
  if (name.length === 0 || name.length > MAX_HOST_NAME_LENGTH || !HOST_NAME.test(name)) {
    throw new Error(
      `invalid allowed host "${text}" (expected a DNS name or IP address without port or wildcard, ` +
        `e.g. punktfunk.lan or 192.168.1.20)`,
    );
  }
  return name;
}

/** Parses `config.json`; unknown keys and wrong types are errors, never silently ignored. */
export function parseFileConfig(text: string, path: string): FileConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`config file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`config file ${path} must hold a JSON object`);
  }
  for (const [key, entry] of Object.entries(value)) {
    const type = Object.hasOwn(FILE_KEYS, key) ? FILE_KEYS[key] : undefined;
    if (type === undefined) throw new Error(`config file ${path}: unknown key "${key}"`);
    if (type === "string" && typeof entry !== "string") {
      throw new Error(`config file ${path}: "${key}" must be a string`);
    }
    if (type === "string[]" && !(Array.isArray(entry) && entry.every((item) => typeof item === "string"))) {
      throw new Error(`config file ${path}: "${key}" must be an array of strings`);
    }
    if (type === "boolean" && typeof entry !== "boolean") {
      throw new Error(`config file ${path}: "${key}" must be a boolean`);
    }
  }
  return value as FileConfig;
}

export function resolveServeConfig(input: {
  flags: ServeFlags;
  env: Env;
  file: FileConfig;
  configDir: string;
  /** Token read from `--mgmt-token-file`/env/file path, or the default `<config>/mgmt-token`. */
  readTokenFile: (path: string) => string | undefined;
}): ServeConfig {
  const { flags, env, file, configDir } = input;
  const bindText = flags.mgmtBind ?? env.PUNKTFUNK_MGMT_BIND ?? file.mgmt_bind ?? DEFAULT_MGMT_BIND;
  const logText = flags.logLevel ?? env.PUNKTFUNK_LOG ?? file.log_level ?? "info";

  let mgmtToken: string | undefined;
  let mgmtTokenSource: ServeConfig["mgmtTokenSource"] = "none";
  const explicitTokenFile = flags.mgmtTokenFile ?? env.PUNKTFUNK_MGMT_TOKEN_FILE ?? file.mgmt_token_file;
  const tokenFile = explicitTokenFile ?? `${configDir}/mgmt-token`;
  if (flags.mgmtToken !== undefined) {
    mgmtToken = flags.mgmtToken;
    mgmtTokenSource = "flag";
  } else if (env.PUNKTFUNK_MGMT_TOKEN !== undefined) {
    mgmtToken = env.PUNKTFUNK_MGMT_TOKEN;
    mgmtTokenSource = "env";
  } else {
    const fromFile = input.readTokenFile(tokenFile);
    if (fromFile === undefined && explicitTokenFile !== undefined) {
      throw new Error(`management token file ${tokenFile} does not exist`);
    }
    if (fromFile !== undefined) {
      mgmtToken = fromFile.trim();
      mgmtTokenSource = "file";
    }
  }
  if (mgmtToken !== undefined && mgmtToken.length < 16) {
    throw new Error(
      `management token from ${mgmtTokenSource} is too short: use at least 16 characters ` +
        `(for example: openssl rand -hex 32)`,
    );
  }
  const envHosts = env.PUNKTFUNK_MGMT_ALLOWED_HOSTS?.split(",").filter((name) => name.trim() !== "");
  const allowedHosts = flags.mgmtAllowedHosts?.length ? flags.mgmtAllowedHosts : envHosts ??
    file.mgmt_allowed_hosts ?? [];
  return {
    configDir,
    mgmtBind: parseBindAddress(bindText),
    mgmtToken,
    mgmtTokenSource,
    mgmtTokenFile: mgmtTokenSource === "file" ? tokenFile : undefined,
    mgmtAllowedHosts: [...new Set(allowedHosts.map(parseAllowedHost))],
    logLevel: parseLogLevel(logText),
    gamestream: resolveGameStream(flags, env, file),
  };
}

function resolveGameStream(flags: ServeFlags, env: Env, file: FileConfig): ServeConfig["gamestream"] {
  const portText = flags.gamestreamPort ?? env.PUNKTFUNK_GAMESTREAM_PORT ?? "47989";
  const basePort = Number(portText);
  // HTTPS sits 5 below and RTSP 21 above the base port (§1.2).
  if (!/^\d{1,5}$/.test(portText) || basePort < 6 || basePort > 65535 - 21) {
    throw new Error(`invalid GameStream port "${portText}" (expected 6..65514)`);
  }
  const audio = env.PUNKTFUNK_AUDIO_SOURCE ?? "auto";
  if (audio !== "auto" && audio !== "tone" && audio !== "pulse") {
    throw new Error(`PUNKTFUNK_AUDIO_SOURCE must be auto, tone or pulse, got "${audio}"`);
  }
  const display = flags.x11Display ?? env.DISPLAY ?? "";
  const graceText = flags.gamestreamResumeGrace ?? env.PUNKTFUNK_GAMESTREAM_RESUME_GRACE ??
    String(DEFAULT_RESUME_GRACE_SECONDS);
  if (!/^\d{1,6}$/.test(graceText) || Number(graceText) > MAX_RESUME_GRACE_SECONDS) {
    throw new Error(
      `invalid GameStream resume grace "${graceText}" (expected 0..${MAX_RESUME_GRACE_SECONDS} seconds)`,
    );
  }
  return {
    enabled: flags.gamestream ?? env.PUNKTFUNK_GAMESTREAM === "1",
    basePort,
    bind: env.PUNKTFUNK_GAMESTREAM_BIND ?? "0.0.0.0",
    x11Display: display === "" ? null : display,
    audioSource: audio,
    mdns: env.PUNKTFUNK_MDNS !== "0",
    resumeGraceSeconds: Number(graceText),
    allowSlowCodecs: flags.gamestreamAllowSlowCodecs ??
      envFlag(env.PUNKTFUNK_GAMESTREAM_ALLOW_SLOW_CODECS) ?? file.gamestream_allow_slow_codecs ?? false,
  };
}

/** "1"/"0" from the environment; unset is undefined, anything else an error. */
function envFlag(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === "1" || value === "0") return value === "1";
  throw new Error(`PUNKTFUNK_GAMESTREAM_ALLOW_SLOW_CODECS must be 0 or 1, got "${value}"`);
}
