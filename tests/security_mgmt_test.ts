/**
 * Issue 15 against the real host's management API: DNS rebinding (a foreign Host), cross-origin
 * state changes, a 100 MB body (declared and chunked), file modes of the state database, and the
 * warning for a token on the command line. Raw sockets, because fetch() sets Host itself.
 *
 * Section numbers (§) refer to docs/gamestream-protocol.md.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { freePort, runCli, spawnHost, waitForHttp } from "./host_process.ts";
import type { HostProcess } from "./host_process.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface RawResponse {
  status: number;
  headers: string;
  body: string;
}

function parseResponse(text: string): RawResponse {
  const [head, ...rest] = text.split("\r\n\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? NaN);
  return { status, headers: head, body: rest.join("\r\n\r\n") };
}

/** One request on its own connection (`Connection: close`), read to the end. */
async function rawRequest(port: number, lines: string[], body = ""): Promise<RawResponse> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const head = [...lines, "Connection: close", `Content-Length: ${encoder.encode(body).length}`];
    await conn.write(encoder.encode(head.join("\r\n") + "\r\n\r\n" + body));
    let text = "";
    for await (const chunk of conn.readable) text += decoder.decode(chunk, { stream: true });
    return parseResponse(text);
  } finally {
    try {
      conn.close();
    } catch { /* closed by the readable's end */ }
  }
}

/** The envelope every refusal must be: a JSON object with only a string `error`. */
function assertEnvelope(response: RawResponse, status: number, pattern: RegExp): void {
  assertEquals(response.status, status, response.headers + "\n" + response.body);
  assertMatch(response.headers, /content-type: application\/json/i);
  const parsed = JSON.parse(response.body);
  assertEquals(Object.keys(parsed), ["error"]);
  assertMatch(parsed.error, pattern);
}

function residentBytes(pid: number): number {
  const kib = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1];
  return Number(kib) * 1024;
}

const HUNDRED_MB = 100 * 1024 * 1024;
const CHUNK = 64 * 1024;

/** Lets the event loop deliver the host's answer between writes that the kernel takes at once. */
const yieldToEventLoop = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * Sends a 100 MB JSON body (declared or chunked) while reading the answer. Returns the answer and how
 * many body bytes had gone out when its first byte arrived; the sender stops at the end of the body or
 * when the host closes the connection.
 */
async function sendHugeBody(port: number, chunked: boolean) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const head = [
    "POST /api/v1/pair/pin HTTP/1.1",
    `Host: 127.0.0.1:${port}`,
    "Content-Type: application/json",
    "Connection: close",
    chunked ? "Transfer-Encoding: chunked" : `Content-Length: ${HUNDRED_MB}`,
  ];
  let sent = 0;
  let sentWhenAnswered: number | undefined;
  const reading = (async () => {
    let text = "";
    try {
      for await (const chunk of conn.readable) {
        sentWhenAnswered ??= sent;
        text += decoder.decode(chunk, { stream: true });
      }
    } catch { /* reset after the answer */ }
    return text;
  })();
  // {"pin":"1234","pad":"xxx…xxx"}: valid JSON, so an unguarded host parses all of it.
  const frame = (data: Uint8Array) =>
    chunked ? new Uint8Array([...encoder.encode(`${CHUNK.toString(16)}\r\n`), ...data, 13, 10]) : data;
  const fill = new Uint8Array(CHUNK).fill(0x78);
  const first = fill.slice();
  first.set(encoder.encode('{"pin":"1234","pad":"'));
  const last = fill.slice();
  last.set(encoder.encode('"}'), CHUNK - 2);
  const [firstFrame, middleFrame, lastFrame] = [first, fill, last].map(frame);
  let writeError: string | undefined;
  try {
    await conn.write(encoder.encode(head.join("\r\n") + "\r\n\r\n"));
    while (sent < HUNDRED_MB) {
      await conn.write(sent === 0 ? firstFrame : sent + CHUNK === HUNDRED_MB ? lastFrame : middleFrame);
      sent += CHUNK;
      await yieldToEventLoop();
    }
    if (chunked) await conn.write(encoder.encode("0\r\n\r\n"));
  } catch (error) {
    writeError = String(error); // the host closed the connection: exactly what it may do
  }
  const text = await reading;
  try {
    conn.close();
  } catch { /* already closed */ }
  return { response: parseResponse(text), sentWhenAnswered: sentWhenAnswered ?? sent, sent, writeError };
}

async function startHost(
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<{ host: HostProcess; port: number }> {
  const port = freePort();
  const host = spawnHost(["serve", "--mgmt-bind", `127.0.0.1:${port}`, ...args], env);
  await (await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, host)).body?.cancel();
  return { host, port };
}

Deno.test("security (issue 15 §6, §7): the management API against rebinding, cross-origin and huge bodies", async (t) => {
  const { host, port } = await startHost([], { PUNKTFUNK_MGMT_ALLOWED_HOSTS: "console.lan" });
  try {
    await t.step("Host: evil.example:PORT is refused with the 421 envelope", async () => {
      for (const path of ["/api/v1/status", "/api/v1/health", "/api/v1/clients"]) {
        const response = await rawRequest(port, [`GET ${path} HTTP/1.1`, `Host: evil.example:${port}`]);
        assertEnvelope(response, 421, /not a name of this host/);
      }
    });

    await t.step("Host: 127.0.0.1:PORT, localhost:PORT and a configured name answer 200", async () => {
      for (const name of ["127.0.0.1", "localhost", "console.lan"]) {
        const response = await rawRequest(port, ["GET /api/v1/status HTTP/1.1", `Host: ${name}:${port}`]);
        assertEquals(response.status, 200, name);
        assertEquals(typeof JSON.parse(response.body).paired_clients, "number");
      }
    });

    await t.step(
      "a cross-origin POST /api/v1/pair/pin is refused; same-origin and Origin-less reach the route",
      async () => {
        const lines = [
          "POST /api/v1/pair/pin HTTP/1.1",
          `Host: 127.0.0.1:${port}`,
          "Content-Type: application/json",
        ];
        const evil = await rawRequest(port, [...lines, "Origin: http://evil.example"], '{"pin":"1234"}');
        assertEnvelope(evil, 403, /cross-origin/);
        // No ceremony waits, so the route itself answers 409: the request got through the guard.
        const same = await rawRequest(port, [...lines, `Origin: http://127.0.0.1:${port}`], '{"pin":"1234"}');
        assertEnvelope(same, 409, /no pairing handshake/);
        const curl = await rawRequest(port, lines, '{"pin":"1234"}');
        assertEnvelope(curl, 409, /no pairing handshake/);
      },
    );

    for (const chunked of [false, true]) {
      await t.step(
        `a 100 MB ${chunked ? "chunked" : "declared"} body gets 413 before it is read`,
        async () => {
          const before = residentBytes(host.child.pid);
          const { response, sentWhenAnswered, sent, writeError } = await sendHugeBody(port, chunked);
          assertEnvelope(response, 413, /exceeds 4096 bytes/);
          assert(
            sentWhenAnswered < HUNDRED_MB,
            `answered only after the whole body (${sentWhenAnswered} of ${HUNDRED_MB} bytes sent)`,
          );
          const health = await fetch(`http://127.0.0.1:${port}/api/v1/health`);
          assertEquals(health.status, 200);
          assertEquals((await health.json()).status, "ok");
          const grown = residentBytes(host.child.pid) - before;
          console.log(
            `${chunked ? "chunked" : "declared"}: answered after ${sentWhenAnswered} B sent, ` +
              `${sent} B sent in all (${writeError ?? "no write error"}), RSS +${
                (grown / 1048576).toFixed(1)
              } MiB`,
          );
          // The unguarded host grew by ~500 MB parsing such a body; a buffered copy alone would be 100 MB.
          assert(grown < 32 * 1024 * 1024, `RSS grew by ${grown} bytes`);
        },
      );
    }

    await t.step("state.db, -wal and -shm are 0600", () => {
      for (const name of ["state.db", "state.db-wal", "state.db-shm"]) {
        assertEquals((Deno.statSync(`${host.configDir}/${name}`).mode! & 0o777).toString(8), "600", name);
      }
    });
  } finally {
    await host.cleanup();
  }
});

Deno.test("security (issue 15 §7): --mgmt-token is warned about and never logged", async () => {
  const token = "cmdline-token-4f1c9a7e2b6d8035";
  const { host, port } = await startHost(["--mgmt-token", token]);
  try {
    const status = await rawRequest(port, [
      "GET /api/v1/status HTTP/1.1",
      `Host: localhost:${port}`,
      `Authorization: Bearer ${token}`,
    ]);
    assertEquals(status.status, 200);
    // The Host check comes before auth: a rebinding page is refused even without the token.
    const evil = await rawRequest(port, ["GET /api/v1/status HTTP/1.1", `Host: evil.example:${port}`]);
    assertEnvelope(evil, 421, /not a name of this host/);

    await host.stop();
    const log = host.stderr();
    const lines = log.trim().split("\n").map((line) => JSON.parse(line));
    const warning = lines.find((l) => l.level === "warn" && /--mgmt-token/.test(l.msg));
    assert(warning, `no warning about --mgmt-token in:\n${log}`);
    assertMatch(warning.msg, /\/proc\/<pid>\/cmdline/);
    assertMatch(warning.msg, /--mgmt-token-file/);
    assertMatch(warning.msg, /PUNKTFUNK_MGMT_TOKEN/);
    assert(!log.includes(token), "the token reached the log");
    assert(lines.some((l) => l.reason === "host"), "the refusal is logged");
  } finally {
    await host.cleanup();
  }
});

Deno.test("security: --mgmt-allowed-host reaches the config and a malformed name stops start-up", async () => {
  const configDir = Deno.makeTempDirSync({ prefix: "punktfunk-test-" });
  const output = await runCli(["--log-format", "json", "serve", "--mgmt-allowed-host", "evil.example:80"], {
    PUNKTFUNK_CONFIG_DIR: configDir,
  });
  Deno.removeSync(configDir, { recursive: true });
  assertEquals(output.code, 1, new TextDecoder().decode(output.stderr));
  const [line] = new TextDecoder().decode(output.stderr).trim().split("\n").map((l) => JSON.parse(l));
  assertMatch(line.msg, /invalid allowed host "evil\.example:80"/);
});
