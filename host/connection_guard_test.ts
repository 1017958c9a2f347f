import { assert, assertEquals } from "../tests/assert.ts";
import fc from "fast-check";
import { ConnectionGuard, LISTENER_DEFENCES, listenerDefence } from "./connection_guard.ts";
import type { ConnectionTicket } from "./connection_guard.ts";

Deno.test("the per-source cap refuses the N+1th connection of one address while another still gets in", () => {
  const guard = new ConnectionGuard({ maxConnections: 10, maxPerSource: 2 });
  assert(guard.admit("10.0.0.2", 0).admitted);
  assert(guard.admit("10.0.0.2", 1).admitted);
  assertEquals(guard.admit("10.0.0.2", 2), { admitted: false, reason: "per_source" });
  assert(guard.admit("10.0.0.3", 3).admitted);
  assertEquals(guard.counters.refused_per_source, 1);
  assertEquals(guard.open, 3);
});

Deno.test("a released connection frees its slot; releasing twice changes nothing", () => {
  const guard = new ConnectionGuard({ maxConnections: 10, maxPerSource: 1 });
  const first = guard.admit("a", 0);
  assert(first.admitted);
  assert(!guard.admit("a", 1).admitted);
  guard.release(first.ticket);
  guard.release(first.ticket);
  assertEquals(guard.openFrom("a"), 0);
  assert(guard.admit("a", 2).admitted);
  assertEquals(guard.open, 1);
});

Deno.test("a full listener evicts the oldest idle connection of the heaviest source for a newcomer", () => {
  const guard = new ConnectionGuard({ maxConnections: 4, maxPerSource: 3 });
  const tickets: ConnectionTicket[] = [];
  for (const source of ["x", "y", "y", "y"]) {
    const admission = guard.admit(source, tickets.length);
    assert(admission.admitted);
    tickets.push(admission.ticket);
  }
  guard.setBusy(tickets[1], true); // y's oldest has a request in flight
  const newcomer = guard.admit("z", 10);
  assert(newcomer.admitted);
  assertEquals(newcomer.evict?.id, tickets[2].id, "y holds most; its oldest idle one goes");
  assertEquals(guard.open, 4);
  assertEquals(guard.openFrom("y"), 2);
  assertEquals(guard.counters.evicted_idle, 1);
});

Deno.test("a busy connection (pairing waiting for its PIN) is never evicted: a full busy listener refuses", () => {
  const guard = new ConnectionGuard({ maxConnections: 2, maxPerSource: 2 });
  for (const source of ["a", "b"]) {
    const admission = guard.admit(source, 0);
    assert(admission.admitted);
    guard.setBusy(admission.ticket, true);
  }
  assertEquals(guard.admit("c", 1), { admitted: false, reason: "total" });
  assertEquals(guard.counters.refused_total, 1);
});

Deno.test("property: caps always hold, busy connections are never evicted, counters add up", () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant("admit" as const), source: fc.integer({ min: 0, max: 6 }) }),
    fc.record({ kind: fc.constant("release" as const), index: fc.nat() }),
    fc.record({ kind: fc.constant("busy" as const), index: fc.nat(), busy: fc.boolean() }),
  );
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 8 }),
    fc.integer({ min: 1, max: 8 }),
    fc.array(op, { maxLength: 200 }),
    (maxConnections, maxPerSource, ops) => {
      const guard = new ConnectionGuard({ maxConnections, maxPerSource });
      const live = new Map<number, { ticket: ConnectionTicket; busy: boolean }>();
      let refused = 0;
      for (const [step, action] of ops.entries()) {
        const liveList = [...live.values()];
        if (action.kind === "admit") {
          const admission = guard.admit(`s${action.source}`, step);
          if (!admission.admitted) {
            refused++;
            continue;
          }
          if (admission.evict) {
            const victim = live.get(admission.evict.id);
            assert(victim && !victim.busy, "only a live idle connection is evicted");
            live.delete(admission.evict.id);
          }
          live.set(admission.ticket.id, { ticket: admission.ticket, busy: false });
        } else if (liveList.length > 0) {
          const target = liveList[action.index % liveList.length];
          if (action.kind === "release") {
            guard.release(target.ticket);
            live.delete(target.ticket.id);
          } else {
            guard.setBusy(target.ticket, action.busy);
            target.busy = action.busy;
          }
        }
        assert(guard.open <= maxConnections);
        assertEquals(guard.open, live.size);
        for (let s = 0; s <= 6; s++) assert(guard.openFrom(`s${s}`) <= maxPerSource);
      }
      assertEquals(guard.counters.refused_per_source + guard.counters.refused_total, refused);
    },
  ));
});

Deno.test("every listener has caps and all four timeouts; overrides only tighten them", () => {
  for (const [name, defence] of Object.entries(LISTENER_DEFENCES)) {
    assert(defence.limits.maxPerSource < defence.limits.maxConnections, name);
    for (const value of Object.values(defence.timeouts)) assert(value > 0 && value <= 30_000, name);
  }
  const sum = Object.values(LISTENER_DEFENCES).reduce((total, d) => total + d.limits.maxConnections, 0);
  assert(sum <= 1024 / 4, `listener caps (${sum}) must stay under a quarter of a 1024 descriptor limit`);
  const tightened = listenerDefence(
    "rtsp",
    JSON.stringify({
      rtsp: { limits: { maxPerSource: 2, maxConnections: 10_000 }, timeouts: { headersMs: 300 } },
    }),
  );
  assertEquals(tightened.limits, {
    maxConnections: LISTENER_DEFENCES.rtsp.limits.maxConnections,
    maxPerSource: 2,
  });
  assertEquals(tightened.timeouts.headersMs, 300);
  assertEquals(listenerDefence("rtsp", "not json"), LISTENER_DEFENCES.rtsp);
  assertEquals(
    listenerDefence("mgmt", JSON.stringify({ mgmt: { timeouts: { idleMs: -5 } } })).timeouts.idleMs,
    5_000,
  );
});
