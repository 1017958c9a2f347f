import { assert, assertEquals } from "../tests/assert.ts";
import { Lifecycle } from "./lifecycle.ts";
import { Logger } from "./log.ts";

function quietLogger(lines: string[] = []): Logger {
  return new Logger("test", { level: "debug", format: "json", sink: (line) => lines.push(line) });
}

Deno.test("shutdown runs closers newest first, once, even when one throws", async () => {
  const lines: string[] = [];
  const lifecycle = new Lifecycle(quietLogger(lines));
  const order: string[] = [];
  lifecycle.onShutdown("db", () => void order.push("db"));
  lifecycle.onShutdown("broken", () => {
    throw new Error("boom");
  });
  lifecycle.onShutdown("server", async () => {
    await Promise.resolve();
    order.push("server");
  });
  await Promise.all([lifecycle.shutdown("test"), lifecycle.shutdown("again")]);
  assertEquals(order, ["server", "db"]);
  assert(lines.some((l) => l.includes("error while closing") && l.includes("boom")));
});

Deno.test("shutdown stops child processes, and SIGKILLs one that ignores SIGTERM", async () => {
  const lifecycle = new Lifecycle(quietLogger());
  const polite = lifecycle.spawn("sleep", { args: ["30"], stdout: "null", stderr: "null" });
  const stubborn = lifecycle.spawn("sh", {
    args: ["-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"],
    stdout: "piped",
    stderr: "null",
  });
  // Wait until the trap is installed, or SIGTERM would arrive before it.
  const reader = stubborn.stdout.getReader();
  await reader.read();
  reader.releaseLock();
  assertEquals(lifecycle.childCount, 2);
  await lifecycle.shutdown("test");
  assertEquals((await polite.status).signal, "SIGTERM");
  assertEquals((await stubborn.status).signal, "SIGKILL");
  await stubborn.stdout.cancel();
  assertEquals(lifecycle.childCount, 0);
});
