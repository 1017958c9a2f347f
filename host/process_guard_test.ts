import { assert, assertEquals } from "../tests/assert.ts";

const CHILD = new URL("../tests/fixtures/process_guard_child.ts", import.meta.url).pathname;

async function runChild(mode: "guarded" | "unguarded") {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD, mode],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: output.code, stdout: new TextDecoder().decode(output.stdout) };
}

Deno.test("process guard: rejections, timer throws and unheard emitter errors are logged and counted, no exit", async () => {
  const { code, stdout } = await runChild("guarded");
  assertEquals(code, 0, stdout);
  const report = JSON.parse(stdout.trim());
  assertEquals(report.counters, { unhandled_rejections: 1, uncaught_errors: 2 });
  assertEquals(report.logged.sort(), [
    "emitter error without listener",
    "rejected nowhere",
    "thrown from a timer",
  ]);
});

Deno.test("without the guard the same child dies (the guard is what keeps it alive)", async () => {
  const { code, stdout } = await runChild("unguarded");
  assert(code !== 0);
  assertEquals(stdout, "");
});
