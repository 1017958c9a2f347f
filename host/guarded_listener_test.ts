import { assert, assertEquals } from "../tests/assert.ts";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { guardNodeServer, runGuardedAcceptLoop } from "./guarded_listener.ts";
import type { ListenerDefence } from "./connection_guard.ts";
import { createSelfSignedCertificate } from "./x509.ts";
import { Logger } from "./log.ts";

const log = new Logger("test", { level: "off", format: "json", sink: () => {} });
const SHORT: ListenerDefence = {
  limits: { maxConnections: 6, maxPerSource: 3 },
  timeouts: { handshakeMs: 300, headersMs: 300, requestBodyMs: 300, idleMs: 300 },
};

interface Client {
  socket: net.Socket;
  closed: Promise<number>;
  data: () => string;
}

/** A raw TCP client from `localAddress`; `closed` resolves with the ms from connect to the server's close. */
function connect(port: number, localAddress = "127.0.0.1", send?: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", localAddress });
    let received = "";
    let connectedAt = 0;
    const closed = new Promise<number>((done) => socket.once("close", () => done(Date.now() - connectedAt)));
    socket.on("data", (chunk) => received += chunk);
    socket.once("error", reject);
    socket.once("connect", () => {
      connectedAt = Date.now();
      socket.off("error", reject);
      socket.on("error", () => {});
      if (send) socket.write(send);
      resolve({ socket, closed, data: () => received });
    });
  });
}

/** Settles with `promise`, or rejects after `ms` (a bound on waiting, not a timing assertion). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)),
  ]);
}

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

const REQUEST = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

Deno.test({
  name: "node:http: idle and half-sent heads are closed, a slow answer is not cut, the per-source cap holds",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const server = http.createServer((req, res) => {
      // Longer than every timeout: a request being answered (pairing phase 1) must never be cut.
      if (req.url === "/slow") setTimeout(() => res.end("slow done"), 1_000);
      else res.end("ok");
    });
    const guard = guardNodeServer(server, { name: "test", defence: SHORT, log });
    const port = await listen(server);
    try {
      await t.step("a connection that sends nothing is closed after the header timeout", async () => {
        const idle = await connect(port);
        await within(idle.closed, 5_000, "idle connection closed");
        assertEquals(idle.data(), "");
      });
      await t.step("a half-sent head is closed after the header timeout", async () => {
        const half = await connect(port, "127.0.0.1", "GET / HTTP/1.1\r\nHost: x\r\n");
        await within(half.closed, 5_000, "half-sent head closed");
        assertEquals(half.data(), "");
      });
      await t.step("a request answered after 1 s (> every timeout) gets its answer", async () => {
        const slow = await connect(port, "127.0.0.1", REQUEST.replace("/ ", "/slow "));
        await within(slow.closed, 5_000, "slow answer");
        assert(slow.data().endsWith("slow done"), slow.data());
      });
      await t.step(
        "the 4th connection from one address is refused while another address gets in",
        async () => {
          const held = await Promise.all([1, 2, 3].map(() => connect(port, "127.0.0.2")));
          await waitFor(() => guard.openFrom("127.0.0.2") === 3);
          const fourth = await connect(port, "127.0.0.2", REQUEST);
          await within(fourth.closed, 5_000, "4th connection refused");
          assertEquals(fourth.data(), "");
          const other = await connect(port, "127.0.0.3", REQUEST);
          await within(other.closed, 5_000, "other address served");
          assert(other.data().startsWith("HTTP/1.1 200"), other.data());
          assert(guard.counters.refused_per_source >= 1);
          held.forEach((c) => c.socket.destroy());
        },
      );
      await t.step(
        "a full listener evicts an idle connection for a newcomer from another address",
        async () => {
          await waitFor(() => guard.open === 0);
          const idle = await Promise.all(
            ["127.0.0.4", "127.0.0.4", "127.0.0.4", "127.0.0.5", "127.0.0.5", "127.0.0.5"].map((a) =>
              connect(port, a)
            ),
          );
          await waitFor(() => guard.open === 6);
          const newcomer = await connect(port, "127.0.0.6", REQUEST);
          await within(newcomer.closed, 5_000, "newcomer served");
          assert(newcomer.data().startsWith("HTTP/1.1 200"), newcomer.data());
          assert(guard.counters.evicted_idle >= 1);
          idle.forEach((c) => c.socket.destroy());
        },
      );
      assert(guard.counters.timed_out >= 2);
    } finally {
      await closeServer(server);
    }
  },
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not reached");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test({
  name:
    "node:https: a never-handshaking connection is closed after the handshake timeout; HTTPS requests work",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const cert = createSelfSignedCertificate({
      kind: "p256",
      commonName: "test",
      notAfter: new Date(Date.now() + 86_400_000),
      ipAddresses: ["127.0.0.1"],
    });
    const defence = { ...SHORT, timeouts: { ...SHORT.timeouts, headersMs: 10_000, idleMs: 10_000 } };
    const server = https.createServer(
      { cert: cert.certPem, key: cert.keyPem, handshakeTimeout: defence.timeouts.handshakeMs },
      (req, res) => req.url === "/slow" ? setTimeout(() => res.end("slow done"), 1_000) : res.end("ok"),
    ) as unknown as http.Server;
    const guard = guardNodeServer(server, { name: "tls", defence, log });
    const port = await listen(server);
    try {
      const silent = await connect(port);
      await within(silent.closed, 5_000, "never-handshaking connection closed");
      for (const path of ["/", "/slow"]) {
        const body = await new Promise<string>((resolve, reject) => {
          https.get({ host: "127.0.0.1", port, path, rejectUnauthorized: false, agent: false }, (res) => {
            let text = "";
            res.on("data", (chunk) => text += chunk);
            res.on("end", () => resolve(text));
          }).on("error", reject);
        });
        assertEquals(body, path === "/" ? "ok" : "slow done");
      }
      await waitFor(() => guard.open === 0);
    } finally {
      await closeServer(server);
    }
  },
});

Deno.test({
  name: "Deno accept loop: per-source cap, whole-connection deadline, and the loop survives refusals",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const guard = runGuardedAcceptLoop(listener, {
      name: "test",
      defence: SHORT,
      log,
      // Echo one read, then hold the connection open until the peer or the deadline closes it.
      serve: async (conn) => {
        const buffer = new Uint8Array(64);
        const n = await conn.read(buffer);
        if (n) await conn.write(buffer.subarray(0, n));
        await conn.read(buffer);
      },
    });
    try {
      const held = await Promise.all([1, 2, 3].map(() => connect(port, "127.0.0.2")));
      await waitFor(() => guard.openFrom("127.0.0.2") === 3);
      const refused = await connect(port, "127.0.0.2", "x");
      await within(refused.closed, 5_000, "4th connection refused");
      assertEquals(refused.data(), "");
      await Promise.all(held.map((c) => within(c.closed, 5_000, "deadline closes held connections")));
      const echo = await connect(port, "127.0.0.3", "ping");
      await waitFor(() => echo.data() === "ping");
      echo.socket.destroy();
      assert(
        guard.counters.timed_out >= 3 && guard.counters.refused_per_source === 1,
        JSON.stringify(guard.counters),
      );
    } finally {
      listener.close();
    }
  },
});

Deno.test({
  name: "accept watchdog: a node listener killed by EMFILE (descriptor flood) accepts again afterwards",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const fixture = new URL("../tests/fixtures/accept_watchdog_child.ts", import.meta.url).pathname;
    // 128 descriptors: Deno itself needs ~25; the flood of 300 exhausts the rest.
    const child = new Deno.Command("sh", {
      args: ["-c", 'ulimit -n 128 && exec "$0" "$@"', Deno.execPath(), "run", "-A", fixture, "300"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = child.stderr.pipeThrough(new TextDecoderStream());
    let log = "";
    const logging = (async () => {
      for await (const chunk of stderr) log += chunk;
    })();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      const port = Number((await reader.read()).value?.trim());
      assert(port > 0);
      const flood = await Promise.all(
        Array.from({ length: 300 }, (_, i) => connect(port, `127.0.0.${2 + (i % 8)}`)),
      );
      flood.forEach((c) => c.socket.destroy());
      // Once the flood is gone the listener must serve again (the watchdog re-listens within a few periods).
      let answer = "";
      const deadline = Date.now() + 20_000;
      while (!answer.includes("alive") && Date.now() < deadline) {
        const probe = await connect(port, "127.0.0.1", REQUEST).catch(() => null);
        if (probe) {
          await within(probe.closed, 2_000, "answer").catch(() => probe.socket.destroy());
          answer = probe.data();
        }
      }
      assert(answer.includes("alive"), `no answer after the flood; child log:\n${log}`);
      assert(log.includes("listener stopped accepting"), "the watchdog noticed the dead listener");
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      await child.status;
      await reader.cancel();
      await logging;
    }
  },
});

Deno.test({
  name: "accept watchdog: probes of a healthy idle listener never count it dead; its owner's close is final",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const lines: string[] = [];
    const traced = new Logger("test", { level: "trace", format: "json", sink: (line) => lines.push(line) });
    const server = http.createServer((_req, res) => res.end("ok"));
    const guard = guardNodeServer(server, {
      name: "idle",
      defence: SHORT,
      log: traced,
      watchdogMs: 50,
      probeTimeoutMs: 100,
    });
    const port = await listen(server);
    await waitFor(() => lines.filter((line) => line.includes("accept probe answered")).length >= 3, 10_000);
    assertEquals(guard.counters.accept_errors, 0, "no healthy listener was declared dead");
    await closeServer(server);
    assertEquals(server.listening, false);
    const refused = await connect(port).then(() => false, () => true);
    assert(refused, "closed by its owner, the listener stays closed");
  },
});

Deno.test({
  name: "node:http: a client trickling a request body holds nothing a newcomer cannot evict",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => res.end("ok"));
    });
    // Body timeout far beyond the test, so only eviction can free the slots.
    const defence: ListenerDefence = {
      limits: { maxConnections: 2, maxPerSource: 2 },
      timeouts: { handshakeMs: 10_000, headersMs: 10_000, requestBodyMs: 60_000, idleMs: 10_000 },
    };
    const guard = guardNodeServer(server, { name: "test", defence, log });
    const port = await listen(server);
    const trickle = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n";
    try {
      const tricklers = await Promise.all([1, 2].map(() => connect(port, "127.0.0.7", trickle)));
      await waitFor(() => guard.open === 2);
      const newcomer = await connect(port, "127.0.0.8", REQUEST);
      await within(newcomer.closed, 5_000, "newcomer served");
      assert(newcomer.data().startsWith("HTTP/1.1 200"), newcomer.data());
      assert(guard.counters.evicted_idle >= 1);
      tricklers.forEach((c) => c.socket.destroy());
    } finally {
      await closeServer(server);
    }
  },
});

Deno.test({
  name: "accept loop: a protected source's connection is never evicted for strangers'",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const defence: ListenerDefence = {
      limits: { maxConnections: 2, maxPerSource: 2 },
      timeouts: { handshakeMs: 10_000, headersMs: 10_000, requestBodyMs: 10_000, idleMs: 10_000 },
    };
    const guard = runGuardedAcceptLoop(listener, {
      name: "test",
      defence,
      log,
      protect: (source) => source === "127.0.0.1",
      serve: async (conn) => {
        await conn.read(new Uint8Array(16)); // held until the peer or an eviction closes it
      },
    });
    try {
      const owner = await connect(port, "127.0.0.1");
      await waitFor(() => guard.openFrom("127.0.0.1") === 1);
      // Strangers churn through the one remaining slot, each evicting the previous stranger, never the owner.
      const strangers = [];
      for (const address of ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]) {
        strangers.push(await connect(port, address));
        await waitFor(() => guard.openFrom(address) === 1 || guard.counters.refused_total > 0);
      }
      assertEquals(guard.openFrom("127.0.0.1"), 1, "the owner's connection is still open");
      assert(!owner.socket.destroyed);
      strangers.forEach((c) => c.socket.destroy());
      owner.socket.destroy();
    } finally {
      listener.close();
    }
  },
});
