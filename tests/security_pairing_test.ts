/**
 * Issue 15, findings 2 and 3: a stranger on the LAN (other loopback source addresses stand in for other
 * machines) against a spawned `serve --gamestream` host. The stranger queues ceremonies ahead of the victim,
 * sends the victim's later phases and a phase 1 with the victim's uniqueid from its own address, sends
 * `/unpair` for the victim over HTTP, and leaves closed connections behind; the victim must still pair, the
 * PIN must reach only the ceremony the operator names, and the stranger must stay unpaired.
 */
import http from "node:http";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { startGameStreamHost, waitUntil } from "./gamestream_client/host_harness.ts";
import { GameStreamTestClient, xmlStatus, xmlTag } from "./gamestream_client/client.ts";
import {
  createClientIdentity,
  GameStreamPairingClient,
  xmlStatusCode,
} from "./gamestream_client/pairing_client.ts";
import type { ClientIdentity } from "./gamestream_client/pairing_client.ts";
import { toHex } from "../pairing/mod.ts";

interface Ceremony {
  id: string;
  device_name: string;
  source_address: string;
  started_unix: number;
  expires_unix: number;
}

/** A GET on the host's HTTP port from `localAddress`; `close()` drops the connection before the reply. */
function getFrom(
  localAddress: string,
  port: number,
  target: string,
): { reply: Promise<string>; close(): void } {
  let request: http.ClientRequest;
  const reply = new Promise<string>((resolve, reject) => {
    request = http.get({ host: "127.0.0.1", port, path: target, localAddress, agent: false }, (res) => {
      let body = "";
      res.on("data", (chunk) => body += chunk);
      res.on("end", () => resolve(body));
      res.on("error", reject);
    });
    request.on("error", reject);
  });
  return { reply, close: () => request.destroy() };
}

/** `promise`, or a failure naming `what` when it has not settled within `ms` (a hung reply is a refusal missed). */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Phase 1 of `identity` from `localAddress` (held by the host until the PIN, a close or expiry). */
function phase1From(localAddress: string, port: number, identity: ClientIdentity, deviceName = "roth") {
  const target = new GameStreamPairingClient({ identity, httpGet: () => Promise.reject() }).pairTarget({
    devicename: deviceName,
    updateState: "1",
    phrase: "getservercert",
    salt: toHex(crypto.getRandomValues(new Uint8Array(16))),
    clientcert: toHex(new TextEncoder().encode(identity.certPem)),
  });
  const request = getFrom(localAddress, port, target);
  request.reply.catch(() => {}); // closing it is the point of some tests
  return request;
}

Deno.test({
  name: "security (issue 15 findings 2, 3): the PIN reaches only the named ceremony; strangers cannot " +
    "hijack, cancel or block pairing",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const { host, base, api } = await startGameStreamHost();
    const describe = () => host.stderr().trimEnd().split("\n").slice(-30).join("\n");
    const ceremonies = async (): Promise<Ceremony[]> => {
      const status = await (await fetch(`${api}/pair`)).json();
      if (!Array.isArray(status.ceremonies)) {
        throw new Error(
          "GET /api/v1/pair lists no ceremonies: the operator cannot tell a stranger's from the victim's",
        );
      }
      return status.ceremonies;
    };
    const pairedCount = async () => (await (await fetch(`${api}/clients`)).json()).length;
    const submitPin = async (body: Record<string, string>) => {
      const response = await fetch(`${api}/pair/pin`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, error: text ? JSON.parse(text).error as string : "" };
    };
    const waitForCeremonies = (what: string, predicate: (list: Ceremony[]) => boolean): Promise<Ceremony[]> =>
      waitUntil<Ceremony[] | null>(
        what,
        async () => {
          const list = await ceremonies();
          return predicate(list) ? list : null;
        },
        10_000,
        describe,
      ) as Promise<Ceremony[]>;

    /**
     * Phases 1–5 of `identity` from `localAddress`; `whileWaiting` runs once phase 1 is held (it submits the
     * PIN), `beforeStep` before each later phase is forwarded (a stranger can strike there).
     */
    const pairFrom = async (
      localAddress: string,
      identity: ClientIdentity,
      pin: string,
      whileWaiting: () => Promise<void>,
      beforeStep: (target: string) => Promise<void> = () => Promise.resolve(),
    ) => {
      const pairing = new GameStreamPairingClient({
        identity,
        httpGet: async (target) => {
          if (!target.includes("getservercert")) await beforeStep(target);
          return getFrom(localAddress, base, target).reply;
        },
      });
      const outcome = pairing.pair(pin);
      outcome.catch(() => {}); // awaited below; a failed step must not leave it unhandled
      await whileWaiting();
      const result = await outcome;
      if (!result.paired) return { paired: false, reason: result.reason, client: null };
      const client = new GameStreamTestClient("127.0.0.1", base, identity);
      client.serverCertPem = result.serverCertPem;
      const reply5 = await client.httpsGet("/pair", {
        devicename: "roth",
        updateState: 1,
        phrase: "pairchallenge",
      });
      return { paired: xmlTag(reply5, "paired") === "1", reason: undefined, client };
    };
    const applistStatus = async (identity: ClientIdentity) =>
      xmlStatus(await new GameStreamTestClient("127.0.0.1", base, identity).httpsGet("/applist"));

    try {
      await t.step(
        "two stranger ceremonies queued before the victim's: an unnamed PIN is refused naming all three; " +
          "the named PIN pairs the victim only",
        async () => {
          const stranger = createClientIdentity();
          // One after the other, so the listing's arrival order is known.
          const strangers = [
            phase1From("127.0.0.2", base, { ...stranger, uniqueId: "A1A1A1A1A1A1A1A1" }),
          ];
          await waitForCeremonies("the first stranger's ceremony", (list) => list.length === 1);
          strangers.push(
            phase1From("127.0.0.3", base, { ...stranger, uniqueId: "A2A2A2A2A2A2A2A2" }, "Living room"),
          );
          await waitForCeremonies("the strangers' ceremonies", (list) => list.length === 2);
          const victim = createClientIdentity();
          let victimCeremony: Ceremony | undefined;
          const result = await pairFrom("127.0.0.4", victim, "5338", async () => {
            const list = await waitForCeremonies("three ceremonies", (list) => list.length === 3);
            assertEquals(list.map((c) => c.source_address), ["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
            assertEquals(list.map((c) => c.device_name), ["roth", "Living room", "roth"]);
            for (const ceremony of list) {
              assertMatch(ceremony.id, /^[0-9a-f]{24}$/);
              assert(ceremony.id !== victim.uniqueId.toLowerCase());
              assert(ceremony.expires_unix - ceremony.started_unix === 120, JSON.stringify(ceremony));
            }
            const unnamed = await submitPin({ pin: "5338" });
            assertEquals(unnamed.status, 409, unnamed.error);
            for (const ceremony of list) {
              assert(unnamed.error.includes(ceremony.id), unnamed.error);
              assert(unnamed.error.includes(ceremony.source_address), unnamed.error);
            }
            victimCeremony = list[2];
            assertEquals((await submitPin({ pin: "5338", ceremony_id: victimCeremony.id })).status, 204);
          });
          assertEquals(result.paired, true, result.reason);
          assert((await result.client!.httpsGet("/applist")).includes("<AppTitle>Desktop</AppTitle>"));
          // The strangers still wait; the operator re-entering the same digits for one of them is refused.
          const left = await ceremonies();
          assertEquals(left.map((c) => c.source_address), ["127.0.0.2", "127.0.0.3"]);
          const again = await submitPin({ pin: "5338", ceremony_id: left[0].id });
          assertEquals(again.status, 409);
          assertMatch(again.error, /already delivered/);
          const stale = await submitPin({ pin: "1111", ceremony_id: victimCeremony!.id });
          assertEquals(stale.status, 409);
          assertEquals((await submitPin({ pin: "1111", ceremony_id: "0".repeat(24) })).status, 404);
          for (const request of strangers) request.close();
          await waitForCeremonies("the strangers' ceremonies to end", (list) => list.length === 0);
          assertEquals(await applistStatus(stranger), 401);
          assertEquals(await pairedCount(), 1);
        },
      );

      await t.step(
        "a stranger's phases 2–4, phase 1 with the victim's uniqueid and HTTP /unpair change nothing",
        async () => {
          const victim = createClientIdentity();
          const stranger = { ...createClientIdentity(), uniqueId: victim.uniqueId };
          const strangerPairing = new GameStreamPairingClient({
            identity: stranger,
            httpGet: () => Promise.reject(),
          });
          const strike = async (params: Record<string, string>) =>
            await getFrom("127.0.0.6", base, strangerPairing.pairTarget(params)).reply;
          const laterPhases = {
            clientchallenge: "00".repeat(16),
            serverchallengeresp: "00".repeat(32),
            clientpairingsecret: "00".repeat(272),
          };
          const result = await pairFrom(
            "127.0.0.5",
            victim,
            "2580",
            async () => {
              const [ceremony] = await waitForCeremonies(
                "the victim's ceremony",
                (list) => list.length === 1,
              );
              assertEquals(ceremony.source_address, "127.0.0.5");
              const phase1 = await within(
                10_000,
                "the stranger's phase 1 with the victim's uniqueid",
                phase1From("127.0.0.6", base, stranger).reply,
              );
              assertEquals(xmlStatusCode(phase1), 409, phase1);
              for (const [phase, value] of Object.entries(laterPhases)) {
                const reply = await strike({ [phase]: value });
                assertMatch(reply, /status_message="Invalid uniqueid"/);
              }
              const unpair = getFrom("127.0.0.6", base, `/unpair?uniqueid=${victim.uniqueId}&uuid=0`);
              assertEquals(xmlStatusCode(await unpair.reply), 200);
              assertEquals(await ceremonies(), [ceremony], "the victim's ceremony is intact");
              assertEquals((await submitPin({ pin: "2580", ceremony_id: ceremony.id })).status, 204);
            },
            async () => {
              for (const [phase, value] of Object.entries(laterPhases)) {
                assertMatch(await strike({ [phase]: value }), /status_message="Invalid uniqueid"/);
              }
            },
          );
          assertEquals(result.paired, true, result.reason);
          assertEquals(xmlStatus(await result.client!.httpsGet("/applist")), 200);
          assertEquals(await applistStatus(stranger), 401);
          assertEquals(await pairedCount(), 2);
          const warnings = host.stderr().split("\n").filter((line) =>
            line.includes("pairing request for a ceremony of another address refused")
          );
          // One phase 1 and three later phases while the victim waited, three before each of its phases 2–4.
          assertEquals(warnings.length, 13, describe());
          assert(warnings.every((line) => line.includes('"source":"127.0.0.6"')), warnings.join("\n"));
        },
      );

      await t.step(
        "closed connections end their ceremonies at once: no PIN is delivered to them and they hold no slot",
        async () => {
          const identity = createClientIdentity();
          const addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.6", "127.0.0.7"];
          const gone = addresses.map((address, i) =>
            phase1From(address, base, { ...identity, uniqueId: `C${i}`.repeat(8) })
          );
          await waitForCeremonies("four ceremonies", (list) => list.length === 4);
          for (const request of gone) request.close();
          await waitForCeremonies("the closed ceremonies to end", (list) => list.length === 0);
          const none = await submitPin({ pin: "8642" });
          assertEquals(none.status, 409);
          assertMatch(none.error, /no pairing handshake is waiting/);

          const departed = phase1From("127.0.0.8", base, createClientIdentity());
          const [ceremony] = await waitForCeremonies("the departing ceremony", (list) => list.length === 1);
          departed.close();
          await waitForCeremonies("the departed ceremony to end", (list) => list.length === 0);
          const named = await submitPin({ pin: "8642", ceremony_id: ceremony.id });
          assertEquals(named.status, 409);
          assertMatch(named.error, /disconnected/);

          // Five closed connections later, a client pairs at once (its phase 1 is not refused as "busy").
          const newcomer = createClientIdentity();
          const result = await pairFrom("127.0.0.9", newcomer, "9753", async () => {
            await waitForCeremonies("the newcomer's ceremony", (list) => list.length === 1);
            assertEquals((await submitPin({ pin: "9753" })).status, 204);
          });
          assertEquals(result.paired, true, result.reason);
          assertEquals(await pairedCount(), 3);
        },
      );

      await t.step(
        "a ceremony that got a wrong PIN cannot be completed by re-submitting the right one",
        async () => {
          const identity = createClientIdentity();
          let ceremonyId = "";
          const result = await pairFrom("127.0.0.7", identity, "1470", async () => {
            const [ceremony] = await waitForCeremonies("the ceremony", (list) => list.length === 1);
            ceremonyId = ceremony.id;
            assertEquals((await submitPin({ pin: "3690", ceremony_id: ceremonyId })).status, 204);
          });
          assertEquals([result.paired, result.reason], [false, "wrong_pin"]);
          const resubmitted = await submitPin({ pin: "1470", ceremony_id: ceremonyId });
          assertEquals(resubmitted.status, 409);
          assertMatch(resubmitted.error, /already received a PIN/);
          assertEquals((await submitPin({ pin: "1470" })).status, 409);
          assertEquals(await applistStatus(identity), 401);
          assertEquals(await pairedCount(), 3);
        },
      );
      await t.step(
        "four strangers holding phase 1 open fill the slots; the operator cancels them and the victim pairs",
        async () => {
          // Addresses no earlier step used, so no leftover ceremony counts against their per-address slot.
          const held = ["127.0.1.2", "127.0.1.3", "127.0.1.4", "127.0.1.5"].map((address) =>
            phase1From(address, base, createClientIdentity(), "stranger")
          );
          // Every slot is taken: the strangers' held ceremonies plus any an earlier step left past its PIN
          // (those count until their TTL); a stranger that found the slots full was answered at once.
          let answered = 0;
          for (const request of held) request.reply.then(() => answered++, () => answered++);
          const strangers = await waitForCeremonies(
            "the strangers' ceremonies fill every slot",
            (list) => list.length > 0 && list.length + answered === held.length,
          );
          const identity = createClientIdentity();
          const refused = await pairFrom("127.0.1.8", identity, "5821", () => Promise.resolve());
          assertEquals(refused.paired, false, "all four slots are taken");
          for (const ceremony of strangers) {
            const response = await fetch(`${api}/pair/${ceremony.id}`, { method: "DELETE" });
            assertEquals(response.status, 204, ceremony.source_address);
          }
          assertEquals(
            (await Promise.all(held.map((r) => r.reply))).filter((x) => /cancelled/.test(x)).length,
            strangers.length,
          );
          const result = await pairFrom("127.0.1.8", identity, "5821", async () => {
            const [ceremony] = await waitForCeremonies(
              "the victim's ceremony alone",
              (list) => list.length === 1 && list[0].source_address === "127.0.1.8",
            );
            assertEquals((await submitPin({ pin: "5821", ceremony_id: ceremony.id })).status, 204);
          });
          assert(result.paired, `victim pairs after the cancel: ${result.reason}`);
          await result.client?.close();
        },
      );
    } finally {
      await host.cleanup();
    }
  },
});
