/**
 * FFI crossing costs of the calls TS makes per session or per poll, against the cheapest export
 * (an empty `pf_log_drain`) as the same-run baseline: `deno bench -A host/native_abi_bench.ts`.
 */
import { NativeCore } from "./native_abi.ts";

const native = NativeCore.open();
const receiver = await native.startVideoReceiver({
  key: "2b7e151628aed2a6abf7158809cf4f3c",
  salt: "00000000",
});

Deno.bench("baseline: empty native log drain (one FFI call)", { baseline: true }, () => {
  native.drainLogs();
});

Deno.bench("receiver stats snapshot (JSON across FFI)", () => {
  receiver.stats();
});

Deno.bench("receiver event poll (empty)", () => {
  receiver.events();
});

globalThis.addEventListener("unload", () => {
  void receiver.close();
});
