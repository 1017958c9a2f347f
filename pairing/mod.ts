/** Pairing and trust: the stores that pin GameStream certificates and native device keys. */
export { GameStreamTrustStore, NativeTrustStore } from "./trust_store.ts";
export type { GameStreamClientRecord, NativeClientRecord } from "./trust_store.ts";
export {
  DEFAULT_MAX_PENDING,
  DEFAULT_MAX_PENDING_PER_IP,
  DEFAULT_PENDING_TTL_MS,
  GameStreamPairing,
} from "./gamestream_pairing.ts";
export type {
  NvReply,
  PairedClient,
  PairingHostOptions,
  PairingRefusals,
  PairingRequestContext,
  SubmitPinResult,
  WaitingCeremony,
} from "./gamestream_pairing.ts";
export {
  aesEcbDecrypt,
  aesEcbEncrypt,
  bytesEqual,
  certificateSignature,
  concatBytes,
  fromHex,
  pinKey,
  rsaSign,
  rsaVerify,
  sha256,
  signatureValueFromDer,
  toHex,
} from "./gamestream_crypto.ts";
