/**
 * Subcommands and their flags. `main.ts` only dispatches here; each command returns an exit code
 * (0 ok, 1 failure, 2 usage error) and writes its own output.
 */
import { parseArgs } from "node:util";
import { parseLogLevel, rootLogger } from "./log.ts";
import type { LogFormat } from "./log.ts";
import { EXPECTED_ABI_VERSION, NativeCore } from "./native_abi.ts";
import { loadServeConfig, startHost } from "./serve.ts";
import { installProcessGuard } from "./process_guard.ts";
import { formatSelftest, runSelftest } from "./selftest.ts";
import { gitCommit, VERSION } from "./version.ts";
import type { SpeedMode } from "./codec_speed.ts";
import { createMgmtApp, serializeOpenApi } from "../mgmt/mod.ts";
import type { MgmtDeps } from "../mgmt/mod.ts";

const encoder = new TextEncoder();
function out(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}
function err(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

class UsageError extends Error {}

const GLOBAL_HELP = `punktfunk ${VERSION} — game and desktop streaming host

Usage: punktfunk [--version] [--log-level LEVEL] <command> [options]

Commands:
  serve      run the host (management API; more planes arrive with --gamestream etc.)
  openapi    print the management API's OpenAPI 3.1 document
  selftest   report what this machine can do, with a reason for every "no"
  bench      data-plane benchmarks (FEC, AEAD, egress, encode latency) as ratios to baselines

Global options:
  --version            version, native ABI version and git commit
  --log-level LEVEL    off|error|warn|info|debug|trace (env PUNKTFUNK_LOG; default info)
  --log-format FORMAT  human|json (default: human on a terminal, json otherwise)
  -h, --help           this help; \`punktfunk <command> --help\` for a command
`;

export const BENCH_NAMES = ["fec_gf8", "fec_gf16", "aead", "egress", "latency_x264_1080p60"];

const COMMAND_HELP: Record<string, string> = {
  serve: `Usage: punktfunk serve [options]

Runs the host. State lives in $PUNKTFUNK_CONFIG_DIR, else $XDG_CONFIG_HOME/punktfunk, else
~/.config/punktfunk. Precedence: flag > environment > <config dir>/config.json > default.

Options:
  --mgmt-bind HOST:PORT    management API address (env PUNKTFUNK_MGMT_BIND; default 127.0.0.1:47990).
                           Off loopback a token is mandatory and the API is served over HTTPS.
  --mgmt-token TOKEN       bearer token (env PUNKTFUNK_MGMT_TOKEN; at least 16 characters)
  --mgmt-token-file PATH   read the token from PATH (env PUNKTFUNK_MGMT_TOKEN_FILE;
                           default <config dir>/mgmt-token when that file exists)
  --mgmt-allowed-host NAME another name the management API answers to, besides localhost,
                           127.0.0.0/8, [::1], the bound address and this machine's hostname(.local)
                           (repeatable; env PUNKTFUNK_MGMT_ALLOWED_HOSTS, comma-separated)
  --gamestream             serve stock Moonlight clients (env PUNKTFUNK_GAMESTREAM=1): HTTP 47989,
                           HTTPS 47984, RTSP 48010, UDP 47998-48000, mDNS _nvstream._tcp
  --gamestream-port PORT   Moonlight's HTTP port; the others keep their offsets
                           (env PUNKTFUNK_GAMESTREAM_PORT; default 47989)
  --gamestream-resume-grace SECONDS
                           keep a session whose client left without quitting for /resume
                           (env PUNKTFUNK_GAMESTREAM_RESUME_GRACE; default 300, 0 ends it at once)
  --gamestream-allow-slow-codecs
                           advertise HEVC/AV1 even when their software encoder cannot hold
                           1280x720@60 here (measured at start; env
                           PUNKTFUNK_GAMESTREAM_ALLOW_SLOW_CODECS=1, config gamestream_allow_slow_codecs)
  --x11-display NAME       X display "Desktop" captures and injects input into (default $DISPLAY);
                           without a reachable one the synthetic source and a recording backend serve
  --log-level LEVEL        see \`punktfunk --help\`
  -h, --help               this help
`,
  openapi: `Usage: punktfunk openapi [--output FILE]

Prints the management API's OpenAPI 3.1 document (the one checked in at api/openapi.json).

Options:
  -o, --output FILE   write to FILE instead of standard output
  -h, --help          this help
`,
  selftest: `Usage: punktfunk selftest [--json] [--speed-mode WxH@FPS]...

Reports what this machine can do: native core, encoders (opened for real at 1280x720), each
codec's encoder speed (measured now, ~2 s per codec and mode, or cached in the state DB with its
date), capture and input backends, QUIC, config paths — with a reason for every "no".

Options:
  --json                machine-readable output
  --speed-mode WxH@FPS  encoder speed for this mode (repeatable; default 1280x720@60, the mode
                        GameStream advertising is decided for)
  -h, --help   this help
`,
};

COMMAND_HELP.bench = `Usage: punktfunk bench [--only NAME]... [--json]

Runs the native core's benchmarks in this process; each prints its figure and a baseline measured
in the same run (scalar Reed–Solomon, memcpy, OpenSSL one-shot AES-GCM, plain sendmmsg).
Names: ${BENCH_NAMES.join(", ")}.

Options:
  --only NAME   run only this benchmark (repeatable)
  --json        one JSON object per line
  -h, --help    this help
`;

const GLOBAL_OPTIONS = {
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

function parse<O extends OptionSpec>(args: string[], options: O) {
  const config = {
    args,
    options: { ...GLOBAL_OPTIONS, ...options },
    strict: true as const,
    allowPositionals: false as const,
  };
  try {
    return parseArgs(config);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function configureLogging(values: { "log-level"?: string; "log-format"?: string }): void {
  const levelText = values["log-level"] ?? Deno.env.get("PUNKTFUNK_LOG");
  if (levelText !== undefined) {
    try {
      rootLogger.configure({ level: parseLogLevel(levelText) });
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  const format = values["log-format"];
  if (format !== undefined) {
    if (format !== "human" && format !== "json") throw new UsageError(`unknown log format "${format}"`);
    rootLogger.configure({ format: format as LogFormat });
  }
}

export function versionText(): string {
  let abi: string;
  try {
    const native = NativeCore.open();
    abi = `native ABI ${native.abiVersion}`;
    native.close();
  } catch (error) {
    abi = `native ABI ${EXPECTED_ABI_VERSION} expected, library not loadable: ${(error as Error).message}`;
  }
  return `punktfunk ${VERSION} (${abi}, commit ${gitCommit()})\n`;
}

/** Deps for generating the document only: no handler runs, so none of these is called. */
const documentOnlyDeps = new Proxy({} as MgmtDeps, {
  get: (_target, key) =>
    key === "token" ? undefined : key === "log" ? rootLogger : () => {
      throw new Error("document-only management app cannot serve requests");
    },
});

export function openApiText(): string {
  return serializeOpenApi(createMgmtApp(documentOnlyDeps).openApiDocument());
}

async function serveCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {
    "mgmt-bind": { type: "string" },
    "mgmt-token": { type: "string" },
    "mgmt-token-file": { type: "string" },
    "mgmt-allowed-host": { type: "string", multiple: true },
    gamestream: { type: "boolean" },
    "gamestream-port": { type: "string" },
    "gamestream-resume-grace": { type: "string" },
    "gamestream-allow-slow-codecs": { type: "boolean" },
    "x11-display": { type: "string" },
  });
  if (values.help) return (out(COMMAND_HELP.serve), 0);
  configureLogging(values);
  const log = rootLogger;
  const config = loadServeConfig({
    mgmtBind: values["mgmt-bind"],
    mgmtToken: values["mgmt-token"],
    mgmtTokenFile: values["mgmt-token-file"],
    mgmtAllowedHosts: values["mgmt-allowed-host"] as string[] | undefined,
    logLevel: values["log-level"],
    gamestream: values.gamestream,
    gamestreamPort: values["gamestream-port"],
    gamestreamResumeGrace: values["gamestream-resume-grace"],
    gamestreamAllowSlowCodecs: values["gamestream-allow-slow-codecs"],
    x11Display: values["x11-display"],
  }, Deno.env.toObject());
  log.configure({ level: config.logLevel });
  if (config.mgmtTokenSource === "flag") {
    // Never the token itself: only where it is exposed and what to use instead.
    log.warn(
      "--mgmt-token is visible to every local user in /proc/<pid>/cmdline and `ps`; pass the token " +
        "with --mgmt-token-file, <config dir>/mgmt-token or the PUNKTFUNK_MGMT_TOKEN environment variable",
    );
  }
  // From here on, a failure no handler caught is logged and counted, never the end of the host.
  installProcessGuard(log.child("process"));
  const host = await startHost(config, log);
  host.lifecycle.installSignalHandlers();
  // Runs until a signal: the handlers shut down and exit.
  await new Promise(() => {});
  return 0;
}

function openapiCommand(args: string[]): number {
  const { values } = parse(args, { output: { type: "string", short: "o" } });
  if (values.help) return (out(COMMAND_HELP.openapi), 0);
  configureLogging(values);
  const text = openApiText();
  if (values.output) Deno.writeTextFileSync(values.output, text);
  else out(text);
  return 0;
}

async function selftestCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {
    json: { type: "boolean" },
    "speed-mode": { type: "string", multiple: true },
  });
  if (values.help) return (out(COMMAND_HELP.selftest), 0);
  configureLogging(values);
  const modes = (values["speed-mode"] as string[] | undefined)?.map(parseSpeedMode);
  const sections = await runSelftest(Deno.env.toObject(), modes);
  out(values.json ? JSON.stringify(sections, null, 2) + "\n" : formatSelftest(sections));
  return 0;
}

async function benchCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { only: { type: "string", multiple: true }, json: { type: "boolean" } });
  if (values.help) return (out(COMMAND_HELP.bench), 0);
  configureLogging(values);
  const names = (values.only as string[] | undefined) ?? BENCH_NAMES;
  const unknown = names.filter((name) => !BENCH_NAMES.includes(name));
  if (unknown.length > 0) throw new UsageError(`unknown benchmark ${unknown.join(", ")}`);
  const native = NativeCore.open();
  try {
    for (const name of names) {
      const result = await native.bench(name);
      out(values.json ? JSON.stringify(result) + "\n" : formatBench(result));
    }
  } finally {
    native.close();
  }
  return 0;
}

/** `WxH@FPS` with even sizes 2..16384 and 1..240 fps (the encoder's own limits). */
export function parseSpeedMode(text: string): SpeedMode {
  const match = /^(\d{1,5})x(\d{1,5})@(\d{1,3})$/.exec(text);
  const [width, height, fps] = match ? [Number(match[1]), Number(match[2]), Number(match[3])] : [0, 0, 0];
  const size = (n: number) => n >= 2 && n <= 16384 && n % 2 === 0;
  if (!match || !size(width) || !size(height) || fps < 1 || fps > 240) {
    throw new UsageError(`invalid --speed-mode "${text}" (expected WxH@FPS, e.g. 1920x1080@60)`);
  }
  return { width, height, fps };
}

export function formatBench(result: Record<string, unknown>): string {
  const { name, ...rest } = result;
  const fields = Object.entries(rest).map(([key, value]) => `  ${key}: ${JSON.stringify(value)}`);
  return `${name}\n${fields.join("\n")}\n`;
}

const COMMANDS: Record<string, (args: string[]) => number | Promise<number>> = {
  bench: benchCommand,
  serve: serveCommand,
  openapi: openapiCommand,
  selftest: selftestCommand,
};

/** Position of the command word, skipping global flags and the values of those that take one. */
export function findCommandIndex(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--log-level" || argv[i] === "--log-format") i++;
    else if (!argv[i].startsWith("-")) return i;
  }
  return -1;
}

export async function runCli(argv: string[]): Promise<number> {
  try {
    const index = findCommandIndex(argv);
    const globals = index === -1 ? argv : argv.slice(0, index);
    const { values } = parse(globals, { version: { type: "boolean", short: "V" } });
    if (values.version) return (out(versionText()), 0);
    if (index === -1) {
      if (values.help) return (out(GLOBAL_HELP), 0);
      throw new UsageError("no command given");
    }
    const command = argv[index];
    const run = COMMANDS[command];
    if (!run) throw new UsageError(`unknown command "${command}"`);
    return await run([
      ...globals.filter((arg) => arg !== "--help" && arg !== "-h"),
      ...argv.slice(index + 1),
    ]);
  } catch (error) {
    if (error instanceof UsageError) {
      err(`punktfunk: ${error.message}\n\n${GLOBAL_HELP}`);
      return 2;
    }
    rootLogger.error((error as Error).message, { kind: (error as Error).name });
    return 1;
  }
}
