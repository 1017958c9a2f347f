/** Starts the real host (`deno run main.ts …`) in a child process for integration tests. */

import { GAMESTREAM_PORT_OFFSETS, gameStreamPorts } from "../gamestream/rtsp.ts";
import type { GameStreamPorts } from "../gamestream/rtsp.ts";

export const MAIN = new URL("../main.ts", import.meta.url).pathname;

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Whether UDP `port` on `hostname` is free (binding it succeeds); a closed socket frees it at once. */
export function udpPortIsFree(port: number, hostname = "127.0.0.1"): boolean {
  try {
    Deno.listenDatagram({ transport: "udp", hostname, port }).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) return false;
    throw error;
  }
}

function tcpPortIsFree(port: number, hostname = "127.0.0.1"): boolean {
  try {
    Deno.listen({ hostname, port }).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) return false;
    throw error;
  }
}

/** The GameStream ports that are TCP; the others (video, control, audio) are UDP. */
const GAMESTREAM_TCP_PORTS = new Set<keyof GameStreamPorts>(["https", "http", "rtsp"]);
/** Each attempt starts from a port the kernel just handed out; a few retries cover a busy machine. */
const FREE_BASE_ATTEMPTS = 50;

/**
 * A GameStream base port whose whole set (fixed offsets from the base, TCP and UDP) is free now: the
 * kernel picks the lowest port (HTTPS, base − 5) and the others are checked by binding them. Like
 * `freePort`, another process could take one before the host binds it; the host then fails to start
 * with the port named.
 */
export function freeGameStreamBase(): number {
  for (let attempt = 0; attempt < FREE_BASE_ATTEMPTS; attempt++) {
    const base = freePort() - GAMESTREAM_PORT_OFFSETS.https;
    let ports: GameStreamPorts;
    try {
      ports = gameStreamPorts(base);
    } catch {
      continue; // the set would end above 65535
    }
    const free = (Object.entries(ports) as [keyof GameStreamPorts, number][]).every(([name, port]) =>
      GAMESTREAM_TCP_PORTS.has(name) ? tcpPortIsFree(port) : udpPortIsFree(port)
    );
    if (free) return base;
  }
  throw new Error(`no free GameStream port set after ${FREE_BASE_ATTEMPTS} attempts`);
}

export interface HostProcess {
  child: Deno.ChildProcess;
  configDir: string;
  /** Everything the host wrote to stderr so far (its log). */
  stderr(): string;
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
  /** The exit status once the process has ended and everything it wrote to stderr has been read. */
  exited(): Promise<Deno.CommandStatus>;
  cleanup(): Promise<void>;
}

export function runCli(args: string[], env: Record<string, string> = {}): Promise<Deno.CommandOutput> {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, ...args],
    env: { PUNKTFUNK_LOG: "info", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
}

export interface SpawnOptions {
  /** Runs the host under `ulimit -n` of this many descriptors (e.g. the common default 1024). */
  openFileLimit?: number;
}

export function spawnHost(
  args: string[],
  env: Record<string, string> = {},
  options: SpawnOptions = {},
): HostProcess {
  const configDir = Deno.makeTempDirSync({ prefix: "punktfunk-test-" });
  const denoArgs = ["run", "--allow-all", MAIN, "--log-format", "json", ...args];
  const limit = options.openFileLimit;
  const [command, commandArgs] = limit === undefined
    ? [Deno.execPath(), denoArgs]
    : ["sh", ["-c", `ulimit -n ${Math.trunc(limit)} && exec "$0" "$@"`, Deno.execPath(), ...denoArgs]];
  const child = new Deno.Command(command, {
    args: commandArgs,
    env: { PUNKTFUNK_CONFIG_DIR: `${configDir}/config`, ...env },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const decoder = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of child.stderr) log += decoder.decode(chunk, { stream: true });
  })();
  let status: Promise<Deno.CommandStatus> | undefined;
  const stop = (signal: Deno.Signal = "SIGTERM") => {
    if (!status) {
      try {
        child.kill(signal);
      } catch { /* already exited */ }
      status = child.status;
    }
    return status;
  };
  return {
    child,
    configDir: `${configDir}/config`,
    stderr: () => log,
    stop,
    exited: async () => {
      const exit = await child.status;
      await reading;
      return exit;
    },
    cleanup: async () => {
      await stop();
      await reading;
      await Deno.remove(configDir, { recursive: true });
    },
  };
}

/** Polls `url` until it answers (any status) or the host exits; returns the first response. */
export async function waitForHttp(
  url: string,
  host: HostProcess,
  init: RequestInit & { client?: Deno.HttpClient } = {},
  timeoutMs = 30_000,
): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  host.child.status.then(() => exited = true);
  while (Date.now() < deadline) {
    if (exited) throw new Error(`host exited before answering:\n${host.stderr()}`);
    try {
      return await fetch(url, init);
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`no answer from ${url} within ${timeoutMs} ms:\n${host.stderr()}`);
}
