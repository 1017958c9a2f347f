/**
 * Request and response schemas of the management API, named and shaped as in the original's
 * OpenAPI document (seed 000), which our spec must match.
 */
import { z } from "@hono/zod-openapi";

const uint32 = () => z.number().int().min(0).openapi({ format: "int32" });

export const ApiErrorSchema = z.object({ error: z.string() }).openapi("ApiError", {
  description: "Error envelope for every non-2xx response.",
});

export const ApiCodecSchema = z.enum(["h264", "h265", "av1"]).openapi("ApiCodec", {
  description: "Video codec identifier.",
});

export const HealthSchema = z.object({
  status: z.string().openapi({ description: 'Always `"ok"` when the host responds.', example: "ok" }),
  version: z.string().openapi({ description: "Host version." }),
  abi_version: uint32().openapi({ description: "Native core C ABI version." }),
}).openapi("Health", { description: "Liveness + version probe." });

export const PortMapSchema = z.object({
  mgmt: uint32().openapi({ description: "This management API." }),
  http: uint32().openapi({ description: "nvhttp plain HTTP (serverinfo, pairing)." }),
  https: uint32().openapi({ description: "nvhttp mutual-TLS HTTPS (post-pairing)." }),
  rtsp: uint32(),
  video: uint32(),
  control: uint32(),
  audio: uint32(),
}).openapi("PortMap", {
  description: "Every port a client integration may need (Moonlight derives the stream ports from the " +
    "HTTP base; a control pane should not have to).",
});

export const HostInfoSchema = z.object({
  hostname: z.string(),
  uniqueid: z.string().openapi({
    description: "Stable per-host id (persisted across restarts), matched on pairing.",
  }),
  local_ip: z.string().openapi({ description: "Best-effort primary LAN IP." }),
  version: z.string().openapi({ description: "Host version." }),
  abi_version: uint32().openapi({ description: "Native core C ABI version." }),
  app_version: z.string().openapi({
    description: "GameStream host version advertised to Moonlight clients.",
  }),
  gfe_version: z.string().openapi({ description: "GFE version advertised to Moonlight clients." }),
  codecs: z.array(ApiCodecSchema).openapi({
    description: "Codecs the host can encode (an encoder of that codec opened at start-up).",
  }),
  ports: PortMapSchema,
}).openapi("HostInfo", {
  description: "Host identity and advertised capabilities (static for the life of the process).",
});

export const SessionInfoSchema = z.object({
  width: uint32(),
  height: uint32(),
  fps: uint32(),
}).openapi("SessionInfo", {
  description: "Client-requested launch parameters (key material is never exposed here).",
});

export const StreamInfoSchema = z.object({
  width: uint32(),
  height: uint32(),
  fps: uint32(),
  bitrate_kbps: uint32(),
  packet_size: uint32().openapi({ description: "Video payload size per packet (bytes)." }),
  min_fec: uint32().openapi({
    description: "Client's parity floor per FEC block (`minRequiredFecPackets`).",
  }),
  codec: ApiCodecSchema,
}).openapi("StreamInfo", { description: "RTSP-negotiated stream parameters." });

const uint64 = () => z.number().int().min(0).openapi({ format: "int64" });

export const LatencyPercentilesSchema = z.object({
  p50: z.number().min(0),
  p99: z.number().min(0),
}).openapi("LatencyPercentiles", { description: "Percentiles in microseconds." });

export const LiveStreamSchema = z.object({
  client_address: z.string().openapi({
    description: "Where video goes: the client's IP:port learned from its ping (its IP before that).",
  }),
  encoder: z.string().openapi({ description: 'libavcodec encoder in use, e.g. `"libx264"`.' }),
  encoder_fallbacks: uint32().openapi({
    description: "Mid-stream switches to the next encoder of the chain after an encoder failure.",
  }),
  fps: z.number().min(0).openapi({
    description: "Video frames sent per second over the last interval (≈ 1 s).",
  }),
  bitrate_kbps: z.number().min(0).openapi({
    description: "Measured video send rate over the last interval, FEC and headers included (kbit/s).",
  }),
  target_bitrate_kbps: uint32().openapi({ description: "The encoder's target bit rate (kbit/s)." }),
  frames_sent: uint64(),
  packets_sent: uint64().openapi({ description: "Video datagrams sent, parity included." }),
  keyframes_sent: uint64().openapi({
    description: "IDR frames sent (the first, requested ones, fallbacks).",
  }),
  idr_requests: uint64().openapi({
    description: "IDR (and reference-invalidation) requests received from the client's control stream.",
  }),
  fec_recovered: uint64().openapi({
    description: "FEC blocks the client reports it repaired (Sunshine FEC status messages; 0 when the " +
      "client sends none, which it does only after a loss).",
  }),
  fec_failed: uint64().openapi({
    description: "FEC blocks the client reports it could not repair (too few shards arrived).",
  }),
  host_processing_us: LatencyPercentilesSchema.openapi({
    description: "Capture to last packet handed to the kernel, per frame, over the whole session.",
  }),
  rtt_ms: z.union([z.null(), z.number().min(0)]).openapi({
    description: "ENet's smoothed round-trip estimate of the control stream (starts at 500 ms, moves 1/8 " +
      "toward each acknowledged reliable command); null without a control stream. The media path's RTT " +
      "is not measured.",
  }),
  updated_unix_ms: uint64().openapi({ description: "When these figures were read from the native session." }),
}).openapi("LiveStream", {
  description: "Live figures of the running GameStream session, from the native session's snapshot " +
    "(read every second) and the control stream.",
});

export const RuntimeStatusSchema = z.object({
  video_streaming: z.boolean().openapi({ description: "True while the video stream is running." }),
  audio_streaming: z.boolean().openapi({ description: "True while the audio stream is running." }),
  pin_pending: z.boolean().openapi({
    description: "True while a pairing handshake is parked waiting for the user's PIN " +
      "(submit it via `POST /api/v1/pair/pin`).",
  }),
  paired_clients: uint32().openapi({ description: "Number of pinned (paired) client certificates." }),
  session: z.union([z.null(), SessionInfoSchema]).optional().openapi({
    description: "The active launch session (set by Moonlight's `/launch`, cleared on cancel/stop).",
  }),
  stream: z.union([z.null(), StreamInfoSchema]).optional().openapi({
    description: "The RTSP-negotiated stream parameters (present once a client has completed ANNOUNCE).",
  }),
  live: z.union([z.null(), LiveStreamSchema]).optional().openapi({
    description: "Live figures of the running stream (null until the native session's first snapshot, and " +
      "when nothing streams). Not in the original's schema: an addition.",
  }),
}).openapi("RuntimeStatus", { description: "Live host status (changes as clients launch/end sessions)." });

export const AvailableCompositorSchema = z.object({
  id: z.string().openapi({
    description: 'Stable identifier (`"kwin"` | `"wlroots"` | `"mutter"` | `"gamescope"`).',
  }),
  label: z.string().openapi({ description: "Human-readable label for UIs." }),
  available: z.boolean().openapi({ description: "Usable on this host right now." }),
  default: z.boolean().openapi({
    description: "True for the backend an `Auto` (unspecified) request resolves to right now.",
  }),
}).openapi("AvailableCompositor", {
  description: "A compositor backend the host can drive a virtual output on, and whether it's usable now.",
});

export const PairedClientSchema = z.object({
  fingerprint: z.string().openapi({
    description: "Lowercase hex SHA-256 of the client certificate DER — the client's stable id here.",
    example: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
  }),
  subject: z.string().nullable().optional().openapi({
    description: "Certificate subject (e.g. `CN=NVIDIA GameStream Client`), if the DER parses.",
  }),
  not_before_unix: z.number().int().nullable().optional().openapi({
    format: "int64",
    description: "Certificate validity start (unix seconds).",
  }),
  not_after_unix: z.number().int().nullable().optional().openapi({
    format: "int64",
    description: "Certificate validity end (unix seconds).",
  }),
}).openapi("PairedClient", { description: "A paired (certificate-pinned) Moonlight client." });

export const PairingCeremonySchema = z.object({
  id: z.string().openapi({
    description: "Opaque random id of this ceremony (not the client's uniqueid); name it as " +
      "`ceremony_id` in `POST /api/v1/pair/pin`.",
    example: "3f9c0a1b2c3d4e5f60718293",
  }),
  device_name: z.string().openapi({
    description: "The device name the client sent (its own claim, not verified; Moonlight sends `roth`).",
  }),
  source_address: z.string().openapi({
    description: "IP address the ceremony began from; its later phases are accepted only from there.",
    example: "192.168.1.23",
  }),
  started_unix: z.number().int().openapi({
    format: "int64",
    description: "When the client's request arrived (unix seconds).",
  }),
  expires_unix: z.number().int().openapi({
    format: "int64",
    description: "When the ceremony fails unless the PIN arrives (unix seconds).",
  }),
}).openapi("PairingCeremony", {
  description: "A GameStream pairing ceremony waiting for the PIN its client displays.",
});

export const PairingStatusSchema = z.object({
  pin_pending: z.boolean().openapi({
    description: "True while a pairing handshake is parked waiting for the user's PIN.",
  }),
  ceremonies: z.array(PairingCeremonySchema).openapi({
    description: "Every ceremony waiting for a PIN, oldest first. Check the source address before " +
      "typing a PIN: anyone on the network can start a ceremony.",
  }),
}).openapi("PairingStatus", { description: "Pairing-flow status." });

export const SubmitPinSchema = z.object({
  pin: z.string().openapi({ description: "1–16 ASCII digits (Moonlight shows 4).", example: "1234" }),
  // Ids are 24 hex digits; 64 leaves room for a longer id later and bounds what an error message echoes.
  ceremony_id: z.string().max(64).optional().openapi({
    description: "The ceremony (`id` from `GET /api/v1/pair`) the PIN is for. Required when more than " +
      "one ceremony waits; without it the PIN goes to the only waiting ceremony.",
    example: "3f9c0a1b2c3d4e5f60718293",
  }),
}).openapi("SubmitPin", { description: "The PIN Moonlight displays during pairing." });

export const NativeClientSchema = z.object({
  name: z.string().openapi({
    description: "The name the client supplied when pairing.",
    example: "Living Room iPad",
  }),
  fingerprint: z.string().openapi({
    description: "Hex SHA-256 of the client's device key — its stable id here.",
  }),
}).openapi("NativeClient", { description: "A paired native (punktfunk/1) client." });

export const NativePairStatusSchema = z.object({
  enabled: z.boolean().openapi({ description: "Whether the native punktfunk/1 host is running." }),
  armed: z.boolean().openapi({ description: "True while a pairing window is open." }),
  pin: z.string().nullable().optional().openapi({
    description: "The PIN to display while armed (null when disarmed).",
    example: "1234",
  }),
  expires_in_secs: z.number().int().min(0).nullable().optional().openapi({
    format: "int64",
    description: "Seconds left in the window (null = disarmed, or armed with no expiry).",
  }),
  paired_clients: uint32().openapi({ description: "Number of paired native clients." }),
}).openapi("NativePairStatus", {
  description: "Native (punktfunk/1) pairing status. The host mints the PIN, so the console displays " +
    "`pin` for the user to enter on their device, armed on demand for a short window.",
});

export const ArmNativePairingSchema = z.object({
  ttl_secs: z.number().int().min(0).nullable().optional().openapi({
    format: "int32",
    description: "Window length in seconds (default 120; clamped to 15600).",
    example: 120,
  }),
}).openapi("ArmNativePairing", { description: "Arm-native-pairing request body." });

export const CeremonyIdParamSchema = z.object({
  ceremony_id: z.string().max(64).openapi({
    param: { name: "ceremony_id", in: "path" },
    description: "A ceremony id from `GET /api/v1/pair`",
  }),
});

export const FingerprintParamSchema = z.object({
  fingerprint: z.string().openapi({
    param: { name: "fingerprint", in: "path" },
    description: "Hex SHA-256 fingerprint of the client certificate DER (64 chars, case-insensitive)",
  }),
});

export type Health = z.infer<typeof HealthSchema>;
export type HostInfo = z.infer<typeof HostInfoSchema>;
export type RuntimeStatus = z.infer<typeof RuntimeStatusSchema>;
export type LiveStream = z.infer<typeof LiveStreamSchema>;
export type AvailableCompositor = z.infer<typeof AvailableCompositorSchema>;
export type PairedClient = z.infer<typeof PairedClientSchema>;
export type PairingCeremony = z.infer<typeof PairingCeremonySchema>;
export type NativeClient = z.infer<typeof NativeClientSchema>;
export type NativePairStatus = z.infer<typeof NativePairStatusSchema>;
export type SessionInfo = z.infer<typeof SessionInfoSchema>;
export type StreamInfo = z.infer<typeof StreamInfoSchema>;
