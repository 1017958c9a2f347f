import { assertEquals } from "../tests/assert.ts";
import { RecordingInjector } from "./input_injection.ts";

Deno.test("RecordingInjector keeps a bounded history and wakes waiters on a matching event", async () => {
  const recorder = new RecordingInjector(undefined, 3);
  const waiting = recorder.waitFor((e) => e.kind === "key" && e.keyCode === 0x41, 1000);
  for (let i = 0; i < 5; i++) recorder.inject({ kind: "mouse_relative", dx: i, dy: 0 });
  recorder.inject({ kind: "key", down: true, keyCode: 0x41, modifiers: 0, flags: 0 });
  assertEquals((await waiting).kind, "key");
  assertEquals(recorder.events().length, 3);
  let timedOut = false;
  await recorder.waitFor((e) => e.kind === "text", 20).catch(() => (timedOut = true));
  assertEquals(timedOut, true);
});
