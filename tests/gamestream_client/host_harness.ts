/**
 * A `serve --gamestream` host for integration tests: spawned on a free port set, loopback only, with
 * the helpers every GameStream test needs (polling with a diagnostic, PIN entry through the management API).
 */
import { freeGameStreamBase, freePort, spawnHost, waitForHttp } from "../host_process.ts";
import type { HostProcess, SpawnOptions } from "../host_process.ts";
import { assertEquals } from "../assert.ts";

export interface GameStreamHostUnderTest {
  host: HostProcess;
  /** The GameStream base port (nvhttp HTTP); HTTPS is base − 5. */
  base: number;
  /** The management API, `http://127.0.0.1:<port>/api/v1`. */
  api: string;
}

export async function startGameStreamHost(
  extraArgs: string[] = [],
  env: Record<string, string> = {},
  spawnOptions: SpawnOptions = {},
): Promise<GameStreamHostUnderTest> {
  const base = freeGameStreamBase();
  const mgmtPort = freePort();
  const host = spawnHost(
    [
      "serve",
      "--gamestream",
      "--gamestream-port",
      String(base),
      "--mgmt-bind",
      `127.0.0.1:${mgmtPort}`,
      ...extraArgs,
    ],
    {
      PUNKTFUNK_MDNS: "0",
      PUNKTFUNK_AUDIO_SOURCE: "tone",
      PUNKTFUNK_GAMESTREAM_BIND: "127.0.0.1",
      DISPLAY: "",
      PUNKTFUNK_LOG: "debug",
      ...env,
    },
    spawnOptions,
  );
  const api = `http://127.0.0.1:${mgmtPort}/api/v1`;
  try {
    await waitForHttp(`${api}/health`, host);
  } catch (error) {
    await host.cleanup();
    throw error;
  }
  return { host, base, api };
}

/** Polls `probe` every 50 ms until it is truthy; on timeout the error carries `describe()`. */
export async function waitUntil<T>(
  what: string,
  probe: () => T | Promise<T>,
  timeoutMs = 20_000,
  describe: () => string = () => "",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${describe()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The user's side of pairing: once the host shows a PIN prompt, type `pin` into the management API. */
export function submitPinWhenAsked(api: string, pin: string): () => Promise<void> {
  return async () => {
    await waitUntil("pin_pending", async () => (await (await fetch(`${api}/pair`)).json()).pin_pending);
    const response = await fetch(`${api}/pair/pin`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ pin }),
    });
    assertEquals(response.status, 204);
    await response.body?.cancel();
  };
}
