import { assert, assertEquals, assertNotEquals } from "../tests/assert.ts";
import tls from "node:tls";
import net from "node:net";
import fc from "fast-check";
import { createHash } from "node:crypto";
import { startMgmtServer } from "./server.ts";
import { loadOrCreateIdentity, startTlsRotation } from "../host/identity.ts";
import { Logger } from "../host/log.ts";

const log = new Logger("test", { level: "off", format: "json", sink: () => {} });
const DAY = 86_400_000;
const TOKEN = "test-token-0123456789abcdef";

Deno.test({
  name: "management server over node:http: methods, headers, streamed bodies, cookies, HEAD, handler failure",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await startMgmtServer({
      host: "127.0.0.1",
      port: 0,
      log,
      fetch: async (request) => {
        const url = new URL(request.url);
        if (url.pathname === "/boom") throw new Error("handler failed");
        const body = request.body ? new Uint8Array(await request.arrayBuffer()) : new Uint8Array();
        const headers = new Headers({
          "content-type": "application/json",
          "x-echo": request.headers.get("x-in") ?? "",
        });
        headers.append("set-cookie", "a=1");
        headers.append("set-cookie", "b=2");
        return new Response(
          JSON.stringify({
            method: request.method,
            path: url.pathname,
            query: url.search,
            bytes: body.length,
          }),
          { status: 201, headers },
        );
      },
    });
    try {
      const big = new Uint8Array(1_000_000).fill(7);
      const response = await fetch(`${server.url}/echo?x=1`, {
        method: "POST",
        body: big,
        headers: { "x-in": "hi" },
      });
      assertEquals(response.status, 201);
      assertEquals(response.headers.get("x-echo"), "hi");
      assertEquals(response.headers.getSetCookie(), ["a=1", "b=2"]);
      assertEquals(await response.json(), { method: "POST", path: "/echo", query: "?x=1", bytes: 1_000_000 });
      const head = await fetch(`${server.url}/echo`, { method: "HEAD" });
      assertEquals(head.status, 201);
      assertEquals(await head.text(), "");
      const failed = await fetch(`${server.url}/boom`);
      assertEquals(failed.status, 500);
      await failed.body?.cancel();
      assert(server.connectionCounters().admitted >= 1);
    } finally {
      await server.shutdown();
    }
  },
});

/** SHA-256 hex of the certificate a fresh TLS connection to `port` is served. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.destroy();
      resolve(createHash("sha256").update(new Uint8Array(raw)).digest("hex"));
    });
    socket.on("error", reject);
  });
}

Deno.test({
  name: "TLS rotation while running: past the rotation point a new HTTPS connection gets the new certificate",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const root = Deno.makeTempDirSync();
    const dir = `${root}/punktfunk`;
    const identity = loadOrCreateIdentity(dir, { hostname: "box" });
    const server = await startMgmtServer({
      host: "0.0.0.0", // off loopback: HTTPS with the host certificate
      port: 0,
      token: TOKEN,
      tls: { certPem: identity.tls.certPem, keyPem: identity.tls.keyPem },
      fetch: () => new Response("ok"),
      log,
    });
    let clock = new Date();
    const rotations: string[] = [];
    const rotation = startTlsRotation({
      dir,
      current: identity.tls,
      now: () => clock,
      hostname: "box",
      onRotated: (rotated) => {
        rotations.push(rotated.summary.fingerprint);
        server.setTls({ certPem: rotated.certPem, keyPem: rotated.keyPem });
      },
    });
    try {
      assertEquals(await servedFingerprint(server.port), identity.tls.summary.fingerprint.toLowerCase());
      assertEquals(rotation.check(), null, "a fresh certificate is not rotated");

      clock = new Date(Date.now() + 12 * DAY); // 2 days of validity left: below the 3-day threshold
      const rotated = rotation.check();
      assert(rotated !== null);
      assertNotEquals(rotated.summary.fingerprint, identity.tls.summary.fingerprint);
      assertEquals(rotations, [rotated.summary.fingerprint]);
      assert(rotated.summary.notAfter.getTime() > clock.getTime() + 13 * DAY, "valid 14 days from the clock");
      assertEquals(await servedFingerprint(server.port), rotated.summary.fingerprint.toLowerCase());
      // On disk too, so a restart keeps serving it.
      const reloaded = loadOrCreateIdentity(dir, { hostname: "box", now: clock });
      assertEquals(reloaded.tls.summary.fingerprint, rotated.summary.fingerprint);
      assertEquals(rotation.check(), null, "rotates once, not on every check");

      // The timer (as `serve` runs it) does the same on its own.
      const timed = startTlsRotation({
        dir,
        current: rotated,
        now: () => new Date(Date.now() + 26 * DAY),
        hostname: "box",
        intervalMs: 20,
        onRotated: (next) => {
          rotations.push(next.summary.fingerprint);
          server.setTls({ certPem: next.certPem, keyPem: next.keyPem });
          timed.stop();
        },
      });
      const deadline = Date.now() + 10_000;
      while (rotations.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      timed.stop();
      assertEquals(rotations.length, 2, "the timer rotated");
      assertEquals(await servedFingerprint(server.port), rotations[1].toLowerCase());
    } finally {
      rotation.stop();
      await server.shutdown();
      Deno.removeSync(root, { recursive: true });
    }
  },
});

/** Sends raw bytes and collects everything until the server closes (bounded by 5 s). */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" }, () => socket.end(bytes));
    let received = "";
    const timer = setTimeout(() => socket.destroy(), 5_000);
    socket.on("data", (chunk) => received += chunk);
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(received);
    });
  });
}

Deno.test({
  name: "management server: a Host header that would rewrite the path is a 400; fuzzed heads never break it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const seen: string[] = [];
    const server = await startMgmtServer({
      host: "127.0.0.1",
      port: 0,
      log,
      fetch: (request) => {
        seen.push(new URL(request.url).pathname);
        return new Response("ok");
      },
    });
    try {
      const smuggled = await rawExchange(
        server.port,
        "GET /api/v1/health HTTP/1.1\r\nHost: x/api/v1/clients#\r\nConnection: close\r\n\r\n",
      );
      assert(smuggled.startsWith("HTTP/1.1 400"), smuggled);
      assertEquals(seen, [], "the handler never saw a rewritten path");

      const token = fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}$/);
      const anyText = fc.string({ unit: "binary", maxLength: 40 });
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom("GET", "POST", "HEAD", "PUT", "BREW"),
          fc.oneof(fc.constant("/api/v1/health"), anyText.map((t) => "/" + t)),
          fc.array(fc.tuple(token, anyText), { maxLength: 5 }),
          fc.oneof(fc.constant("127.0.0.1"), anyText),
          async (method, target, headers, host) => {
            const head = [
              `${method} ${target} HTTP/1.1`,
              `Host: ${host}`,
              ...headers.map(([k, v]) => `${k}: ${v}`),
            ];
            const reply = await rawExchange(server.port, head.join("\r\n") + "\r\nConnection: close\r\n\r\n");
            // Every head gets an HTTP answer or a close — never a crash or a hang.
            assert(reply === "" || reply.startsWith("HTTP/1.1 "), JSON.stringify(reply.slice(0, 80)));
          },
        ),
        { numRuns: 60 },
      );
      assertEquals(await (await fetch(`${server.url}/api/v1/health`)).text(), "ok");
    } finally {
      await server.shutdown();
    }
  },
});

Deno.test("adapter: a keep-alive connection does not gather a listener per request", async () => {
  const { default: http } = await import("node:http");
  const { fetchRequestListener } = await import("./fetch_adapter.ts");
  let socket: net.Socket | undefined;
  const server = http.createServer(
    fetchRequestListener(() => Response.json({ ok: true }), "http", log),
  );
  server.on("connection", (s: net.Socket) => socket = s);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const listenersAfter = async (requests: number) => {
      for (let i = 0; i < requests; i++) {
        await new Promise<void>((resolve, reject) =>
          http.get({ host: "127.0.0.1", port, path: "/", agent }, (res) => {
            res.resume();
            res.on("end", resolve);
          }).on("error", reject)
        );
      }
      return socket!.listenerCount("close");
    };
    const afterOne = await listenersAfter(1);
    assertEquals(await listenersAfter(30), afterOne, "close listeners grew with the requests");
  } finally {
    agent.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});
