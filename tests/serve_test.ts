/**
 * The real host, started as a child process on a free port with a temp config dir: loopback HTTP,
 * the off-loopback token rule, HTTPS with the host certificate, and graceful shutdown.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { freeGameStreamBase, freePort, runCli, spawnHost, waitForHttp } from "./host_process.ts";

const TOKEN = "integration-token-0123456789";

Deno.test("serve on loopback answers health, creates its state, and stops cleanly on SIGTERM", async () => {
  const port = freePort();
  const host = spawnHost(["serve", "--mgmt-bind", `127.0.0.1:${port}`]);
  try {
    const response = await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, host);
    assertEquals(response.status, 200);
    const body = await response.json();
    assertEquals(body.status, "ok");
    assertEquals(body.abi_version, 1);
    assertMatch(body.version, /^\d+\.\d+\.\d+/);

    // No token on loopback: the rest is reachable too, and reports real encoder probe results.
    const info = await (await fetch(`http://127.0.0.1:${port}/api/v1/host`)).json();
    assertEquals(info.ports.mgmt, port);
    assert(info.codecs.includes("h264"), `software H.264 expected, got ${JSON.stringify(info.codecs)}`);
    const status = await (await fetch(`http://127.0.0.1:${port}/api/v1/status`)).json();
    assertEquals(status.paired_clients, 0);

    for (const name of ["uniqueid", "gamestream-cert.pem", "host-key.pem", "state.db", "mgmt-endpoint"]) {
      assert(Deno.statSync(`${host.configDir}/${name}`).isFile, name);
    }
    assertEquals(
      Deno.readTextFileSync(`${host.configDir}/mgmt-endpoint`).trim(),
      `PUNKTFUNK_MGMT_URL=http://127.0.0.1:${port}`,
    );

    const exit = await host.stop("SIGTERM");
    assertEquals(exit.code, 0, host.stderr());
    const lines = host.stderr().trim().split("\n").map((line) => JSON.parse(line));
    assert(lines.some((l) => l.msg === "shutting down"), "logs its shutdown");
    assert(
      lines.some((l) => String(l.target).startsWith("native::")),
      "native log records reach the TS logger",
    );
  } finally {
    await host.cleanup();
  }
});

Deno.test("without --gamestream nothing listens on the GameStream ports and there is no stream", async () => {
  const port = freePort();
  const base = freeGameStreamBase();
  const host = spawnHost(["serve", "--mgmt-bind", `127.0.0.1:${port}`, "--gamestream-port", String(base)], {
    PUNKTFUNK_GAMESTREAM_BIND: "127.0.0.1",
  });
  try {
    await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, host);
    // HTTPS, HTTP and RTSP (TCP); nvhttp's ports would answer at once if anything listened.
    for (const tcpPort of [base - 5, base, base + 21]) {
      let connected = false;
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: tcpPort })).close();
        connected = true;
      } catch { /* refused, as it should be */ }
      assert(!connected, `something listens on ${tcpPort}`);
    }
    const status = await (await fetch(`http://127.0.0.1:${port}/api/v1/status`)).json();
    assertEquals([status.video_streaming, status.session, status.stream], [false, null, null]);
    const idr = await fetch(`http://127.0.0.1:${port}/api/v1/session/idr`, { method: "POST" });
    assertEquals(idr.status, 409);
    await idr.body?.cancel();
  } finally {
    await host.cleanup();
  }
});

Deno.test("serve off loopback without a token refuses to start and says how to set one", async () => {
  const host = spawnHost(["serve", "--mgmt-bind", `0.0.0.0:${freePort()}`]);
  try {
    // Its stderr is read to the end, not just up to the moment the exit was seen.
    const exit = await host.exited();
    assert(exit.code !== 0, "non-zero exit");
    assertMatch(host.stderr(), /refusing to serve the management API on 0\.0\.0\.0 without a token/);
    assertMatch(host.stderr(), /--mgmt-token/);
  } finally {
    await host.cleanup();
  }
});

Deno.test("serve off loopback with a token speaks HTTPS: 401 without it, 200 with it, health open", async () => {
  const port = freePort();
  const host = spawnHost(["serve", "--mgmt-bind", `0.0.0.0:${port}`], { PUNKTFUNK_MGMT_TOKEN: TOKEN });
  let client: Deno.HttpClient | undefined;
  try {
    // The certificate only exists once the host has started; plain TLS-less probes tell us it's up.
    const deadline = Date.now() + 30_000;
    while (!client && Date.now() < deadline) {
      try {
        const certPem = Deno.readTextFileSync(`${host.configDir}/host-cert.pem`);
        client = Deno.createHttpClient({ caCerts: [certPem] });
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    assert(client, "host certificate appeared");
    const base = `https://127.0.0.1:${port}/api/v1`;
    const health = await waitForHttp(`${base}/health`, host, { client });
    assertEquals(health.status, 200);
    await health.body?.cancel();

    const denied = await fetch(`${base}/status`, { client });
    assertEquals(denied.status, 401);
    assertEquals(await denied.json(), { error: "missing or invalid bearer token" });
    const allowed = await fetch(`${base}/status`, { client, headers: { authorization: `Bearer ${TOKEN}` } });
    assertEquals(allowed.status, 200);
    assertEquals((await allowed.json()).video_streaming, false);
  } finally {
    client?.close();
    await host.cleanup();
  }
});

Deno.test("`punktfunk openapi` prints exactly the checked-in api/openapi.json", async () => {
  const output = await runCli(["openapi"]);
  assertEquals(output.code, 0);
  const printed = new TextDecoder().decode(output.stdout);
  assertEquals(printed, Deno.readTextFileSync(new URL("../api/openapi.json", import.meta.url)));
});

Deno.test("--version names version, native ABI and commit; --help on every command", async () => {
  const version = new TextDecoder().decode((await runCli(["--version"])).stdout);
  assertMatch(version, /^punktfunk \d+\.\d+\.\d+ \(native ABI 1, commit ([0-9a-f]{40}|unknown)\)$/m);
  for (const command of ["serve", "openapi", "selftest"]) {
    const output = await runCli([command, "--help"]);
    assertEquals(output.code, 0, command);
    assertMatch(new TextDecoder().decode(output.stdout), new RegExp(`^Usage: punktfunk ${command}`));
  }
  const bad = await runCli(["serve", "--no-such-flag"]);
  assertEquals(bad.code, 2);
  assertMatch(new TextDecoder().decode(bad.stderr), /no-such-flag/);
});

Deno.test("selftest reports every area with a reason for each no", async () => {
  const output = await runCli(["selftest", "--json"], { DISPLAY: "" });
  assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
  const sections = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    title: string;
    items: { name: string; ok: boolean; detail: string }[];
  }[];
  const titles = sections.map((s) => s.title);
  for (const expected of ["config", "native core", "capture backends", "input backends", "network"]) {
    assert(titles.includes(expected), `${expected} in ${titles}`);
  }
  assert(titles.some((t) => t.startsWith("encoders")));
  for (const item of sections.flatMap((s) => s.items)) assert(item.detail.length > 0, item.name);
  const x11 = sections.find((s) => s.title === "capture backends")!.items.find((i) => i.name === "x11")!;
  assertEquals(x11.ok, false);
  assertMatch(x11.detail, /DISPLAY is not set/);
  const quic = sections.find((s) => s.title === "network")!.items[0];
  assertEquals(quic.ok, true, quic.detail);
});

Deno.test("`punktfunk bench` reports a figure and its same-run baseline", async () => {
  const output = await runCli(["bench", "--only", "aead", "--json"]);
  assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
  const result = JSON.parse(new TextDecoder().decode(output.stdout));
  assertEquals(result.name, "aead");
  assert(result.seal_ns > 0 && result.openssl_one_shot_ns > 0 && result.ratio > 0);
  const bad = await runCli(["bench", "--only", "nope"]);
  assertEquals(bad.code, 2);
});
