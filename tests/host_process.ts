/** Starts the real host (`deno run main.ts …`) in a child process for integration tests. */

export const MAIN = new URL("../main.ts", import.meta.url).pathname;

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

export interface HostProcess {
  child: Deno.ChildProcess;
  configDir: string;
  /** Everything the host wrote to stderr so far (its log). */
  stderr(): string;
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
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

export function spawnHost(args: string[], env: Record<string, string> = {}): HostProcess {
  const configDir = Deno.makeTempDirSync({ prefix: "punktfunk-test-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "--log-format", "json", ...args],
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
