import { assertEquals, assertThrows } from "../tests/assert.ts";
import { parseSpeedMode } from "./cli.ts";

Deno.test("--speed-mode takes WxH@FPS within the encoder's limits", () => {
  assertEquals(parseSpeedMode("1920x1080@60"), { width: 1920, height: 1080, fps: 60 });
  assertEquals(parseSpeedMode("2x2@1"), { width: 2, height: 2, fps: 1 });
  for (
    const bad of ["", "1920x1080", "1921x1080@60", "1920x1080@0", "1920x1080@241", "18000x2@30", "a x b@c"]
  ) {
    assertThrows(() => parseSpeedMode(bad), /invalid --speed-mode/, bad);
  }
});
