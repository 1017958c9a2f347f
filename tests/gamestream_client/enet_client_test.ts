import { assert, assertEquals } from "../assert.ts";
import { EnetHostPeer } from "../../gamestream/mod.ts";
import { EnetClientPeer } from "./enet_client.ts";

Deno.test("ENet test client ⇄ host peer: connect data, reliable both ways in order under loss, host disconnect", () => {
  const host = new EnetHostPeer();
  const client = new EnetClientPeer();
  let now = 1000;
  let seed = 7;
  const lossy = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 10 < 2; // 20 %
  const toHost: Uint8Array[] = [];
  const toClient: Uint8Array[] = [];
  const hostDelivered: number[] = [];
  const clientDelivered: number[] = [];
  let connectData = -1;
  let clientConnected = false;
  let hostDisconnected = false;
  const pump = () => {
    for (let round = 0; round < 200; round++) {
      now += 10;
      toHost.push(...client.tick(now).datagrams);
      const hostTick = host.tick(now);
      toClient.push(...hostTick.datagramsToSend);
      for (const d of toHost.splice(0)) {
        if (lossy()) continue;
        const out = host.receive(d, now);
        toClient.push(...out.datagramsToSend);
        for (const e of out.events) if (e.type === "connect") connectData = e.data;
        for (const m of out.delivered) hostDelivered.push(m.payload[0]);
      }
      for (const d of toClient.splice(0)) {
        if (lossy()) continue;
        const out = client.receive(d, now);
        toHost.push(...out.datagrams);
        if (out.events.includes("connected")) clientConnected = true;
        if (out.events.includes("disconnected")) hostDisconnected = true;
        for (const m of out.delivered) clientDelivered.push(m.payload[0]);
      }
    }
  };
  toHost.push(...client.connect(0xdeadbeef, now).datagrams);
  pump();
  assert(clientConnected);
  assertEquals(connectData >>> 0, 0xdeadbeef);
  for (let i = 0; i < 20; i++) {
    toHost.push(...client.send(i % 3, Uint8Array.of(i), now).datagrams);
    host.send(0, Uint8Array.of(100 + i), true);
  }
  pump();
  // Per channel in order: sort by channel order of sending.
  assertEquals(hostDelivered.sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
  assertEquals(clientDelivered, Array.from({ length: 20 }, (_, i) => 100 + i));
  host.disconnect();
  pump();
  assert(hostDisconnected);
});
