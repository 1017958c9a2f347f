import { assert, assertEquals } from "../tests/assert.ts";
import { gameStreamRecords, wantsGameStream } from "./mdns.ts";

Deno.test("mDNS records: PTR → instance, SRV at the HTTP port, one empty TXT string, A per address", () => {
  const records = gameStreamRecords("my host!x", 47989, ["192.168.1.10"]);
  assertEquals(records.map((r) => r.type), ["PTR", "SRV", "TXT", "A"]);
  assertEquals(records[0], {
    name: "_nvstream._tcp.local",
    type: "PTR",
    ttl: 120,
    data: "my-host._nvstream._tcp.local",
  });
  assertEquals((records[1].data as { port: number }).port, 47989);
  assertEquals(records[2].data, [""]);
  assertEquals(records[3].data, "192.168.1.10");
  assert(wantsGameStream({ name: "_nvstream._tcp.local", type: "PTR" }, "my host!x"));
  assert(!wantsGameStream({ name: "_http._tcp.local", type: "PTR" }, "my host!x"));
});
