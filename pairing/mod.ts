/** Pairing and trust: the stores that pin GameStream certificates and native device keys. */
export { GameStreamTrustStore, NativeTrustStore } from "./trust_store.ts";
export type { GameStreamClientRecord, NativeClientRecord } from "./trust_store.ts";
export { GameStreamPairing } from "./gamestream_pairing.ts";
export type { NvReply, PairingHostOptions, PairingRequestContext } from "./gamestream_pairing.ts";
