//! Pipeline configuration, crossing the ABI once per session as JSON (rare, so flexibility beats
//! a versioned struct here). Every field is validated with a message naming it.

use crate::fec::FecScheme;
use serde_json::Value;
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    Synthetic,
    X11 { display: String },
}

/// GameStream video settings (from the client's ANNOUNCE and the launch keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameStreamVideoWire {
    /// `x-nv-video[0].packetSize`, already reduced by 32 when encryption is on.
    pub packet_size: u32,
    pub min_required_fec: u32,
    /// AES-GCM per shard (`SS_ENC_VIDEO`) with the session key.
    pub encrypt: bool,
    /// `X-SS-Ping-Payload`: the client's pings carry it; None accepts the legacy `PING`.
    pub ping_payload: Option<[u8; 16]>,
    /// The session owner's IP (the address that launched it): only its pings bind the stream.
    pub client_ip: Option<std::net::IpAddr>,
    /// How long to wait for the client's first ping before giving up the session.
    pub ping_timeout_ms: u32,
}

/// What goes on the wire: our punktfunk/1 datagrams or Moonlight-compatible GameStream video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    Pf1 {
        salt: [u8; 4],
        destination: SocketAddr,
    },
    /// The destination is learned from the client's first matching ping on `bind`.
    GameStream(GameStreamVideoWire),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    pub source: SourceKind,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub codec: String,
    pub encoder: String,
    pub bitrate_kbps: u32,
    pub cbr_filler: bool,
    pub fec_scheme: FecScheme,
    pub fec_percent: u32,
    pub min_parity: u32,
    pub max_data_per_block: u32,
    pub shard_bytes: u32,
    pub key: [u8; 16],
    pub wire: Wire,
    pub bind: SocketAddr,
    /// Packets leave at this multiple of the bitrate: fast enough that a frame's burst clears
    /// well within one frame interval, slow enough not to overrun queues.
    pub pacing_multiplier: f64,
    pub loss_ppm: u32,
    pub loss_seed: u64,
    /// Stop after this many frames (tests); None = until stopped.
    pub max_frames: Option<u64>,
    /// TEST FAULT INJECTION: deliberate failures to prove the session watch and encoder fallback.
    pub fault: FaultInjection,
}

/// TEST FAULT INJECTION (config key `fault`): never set by production code paths. Counts are frames
/// the encode thread produced since the session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultInjection {
    /// The encoder "fails" once, at this frame, through the same path as a real libav error.
    pub fail_encoder_after_frames: Option<u64>,
    /// The encode thread panics at this frame: the worker dies as a crash would end it.
    pub kill_worker_after_frames: Option<u64>,
}

impl FaultInjection {
    fn from_json(root: &Value) -> Result<Self, String> {
        let Some(fault) = field(root, "fault") else {
            return Ok(Self::default());
        };
        if !fault.is_object() {
            return Err("fault must be an object".into());
        }
        let count = |name: &str| -> Result<Option<u64>, String> {
            match field(fault, name) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .filter(|n| *n >= 1)
                    .map(Some)
                    .ok_or_else(|| format!("fault.{name} must be an integer of at least 1")),
            }
        };
        if let Some(unknown) = fault
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
            .find(|k| {
                !["fail_encoder_after_frames", "kill_worker_after_frames"].contains(&k.as_str())
            })
        {
            return Err(format!("fault.{unknown} is not a known fault"));
        }
        Ok(Self {
            fail_encoder_after_frames: count("fail_encoder_after_frames")?,
            kill_worker_after_frames: count("kill_worker_after_frames")?,
        })
    }
}

pub(crate) fn field<'a>(root: &'a Value, name: &str) -> Option<&'a Value> {
    root.get(name).filter(|v| !v.is_null())
}

pub(crate) fn u32_field(
    root: &Value,
    name: &str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, String> {
    match field(root, name) {
        None => Ok(default),
        Some(v) => {
            let n = v
                .as_u64()
                .ok_or_else(|| format!("{name} must be a non-negative integer"))?;
            if n < u64::from(min) || n > u64::from(max) {
                return Err(format!("{name} must be between {min} and {max}, got {n}"));
            }
            Ok(n as u32)
        }
    }
}

pub(crate) fn string_field(root: &Value, name: &str, default: &str) -> Result<String, String> {
    match field(root, name) {
        None => Ok(default.to_string()),
        Some(v) => v
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{name} must be a string")),
    }
}

pub(crate) fn hex_bytes<const N: usize>(root: &Value, name: &str) -> Result<[u8; N], String> {
    let text = field(root, name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{name} is required ({} hex digits)", N * 2))?;
    if text.len() != N * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{name} must be exactly {} hex digits", N * 2));
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte =
            u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(out)
}

pub(crate) fn address(
    root: &Value,
    name: &str,
    default: Option<&str>,
) -> Result<SocketAddr, String> {
    let text = match field(root, name) {
        Some(v) => v
            .as_str()
            .ok_or_else(|| format!("{name} must be a string HOST:PORT"))?
            .to_string(),
        None => default
            .ok_or_else(|| format!("{name} is required"))?
            .to_string(),
    };
    text.parse()
        .map_err(|_| format!("{name} must be an IP:PORT address, got {text:?}"))
}

impl PipelineConfig {
    pub fn from_json(text: &str) -> Result<Self, String> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| format!("config is not valid JSON: {e}"))?;
        if !root.is_object() {
            return Err("config must be a JSON object".into());
        }
        let source = match field(&root, "source") {
            None => SourceKind::Synthetic,
            Some(source) => match source.get("kind").and_then(Value::as_str) {
                Some("synthetic") => SourceKind::Synthetic,
                Some("x11") => SourceKind::X11 {
                    display: string_field(source, "display", ":0")?,
                },
                other => {
                    return Err(format!(
                        "source.kind must be \"synthetic\" or \"x11\", got {other:?}"
                    ))
                }
            },
        };
        let width = u32_field(&root, "width", 1280, 64, 16384)?;
        let height = u32_field(&root, "height", 720, 64, 16384)?;
        if width % 2 != 0 || height % 2 != 0 {
            return Err(format!(
                "width and height must be even for 4:2:0, got {width}x{height}"
            ));
        }
        let codec = string_field(&root, "codec", "h264")?;
        if !["h264", "hevc", "av1"].contains(&codec.as_str()) {
            return Err(format!("codec must be h264, hevc or av1, got {codec:?}"));
        }
        let fec = field(&root, "fec")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        let fec_scheme = match string_field(&fec, "scheme", "gf16")?.as_str() {
            "none" => FecScheme::None,
            "gf8" => FecScheme::Gf8,
            "gf16" => FecScheme::Gf16,
            other => {
                return Err(format!(
                    "fec.scheme must be none, gf8 or gf16, got {other:?}"
                ))
            }
        };
        // GF(2^16) symbols are two bytes, so its shards must be even; 512 is the original's floor.
        let shard_bytes = u32_field(&root, "shard_bytes", 1408, 512, 8908)?;
        if fec_scheme == FecScheme::Gf16 && shard_bytes % 2 != 0 {
            return Err("shard_bytes must be even with fec.scheme gf16".into());
        }
        let max_data_default = if fec_scheme == FecScheme::Gf8 {
            200
        } else {
            4096
        };
        let max_data_limit = if fec_scheme == FecScheme::Gf8 {
            253
        } else {
            32768
        };
        let pacing_multiplier = match field(&root, "pacing_multiplier") {
            None => 2.0,
            Some(v) => v
                .as_f64()
                .filter(|m| (0.0..=100.0).contains(m))
                .ok_or("pacing_multiplier must be a number from 0 (unpaced) to 100")?,
        };
        let max_frames = match field(&root, "max_frames") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or("max_frames must be a non-negative integer")?,
            ),
        };
        let key = hex_bytes::<16>(&root, "key")?;
        if key == [0u8; 16] {
            return Err("key must not be all zero".into());
        }
        let wire = match field(&root, "gamestream") {
            None => Wire::Pf1 {
                salt: hex_bytes::<4>(&root, "salt")?,
                destination: address(&root, "destination", None)?,
            },
            Some(gs) => {
                if fec_scheme == FecScheme::Gf16 {
                    return Err("gamestream video needs fec.scheme gf8 or none".into());
                }
                let packet_size = u32_field(gs, "packet_size", 1024, 32, 65_456)?;
                if packet_size % 16 != 0 {
                    return Err(format!(
                        "gamestream.packet_size must be a multiple of 16, got {packet_size}"
                    ));
                }
                let ping_payload =
                    super::client_ping::ping_payload(gs).map_err(|e| format!("gamestream.{e}"))?;
                Wire::GameStream(GameStreamVideoWire {
                    packet_size,
                    min_required_fec: u32_field(gs, "min_required_fec", 2, 0, 64)?,
                    encrypt: field(gs, "encrypt")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    ping_payload,
                    client_ip: super::client_ping::client_ip(gs)
                        .map_err(|e| format!("gamestream.{e}"))?,
                    // Sunshine's ping_timeout: 10 s for the client to show up.
                    ping_timeout_ms: u32_field(gs, "ping_timeout_ms", 10_000, 100, 600_000)?,
                })
            }
        };
        Ok(Self {
            source,
            width,
            height,
            fps: u32_field(&root, "fps", 60, 1, 480)?,
            codec,
            encoder: string_field(&root, "encoder", "auto")?,
            bitrate_kbps: u32_field(&root, "bitrate_kbps", 20_000, 100, 2_000_000)?,
            cbr_filler: field(&root, "cbr_filler")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            fec_scheme,
            fec_percent: u32_field(&fec, "percent", 20, 0, 200)?,
            min_parity: u32_field(&fec, "min_parity", 2, 0, 64)?,
            max_data_per_block: u32_field(
                &fec,
                "max_data_per_block",
                max_data_default,
                1,
                max_data_limit,
            )?,
            shard_bytes,
            key,
            wire,
            bind: address(&root, "bind", Some("0.0.0.0:0"))?,
            pacing_multiplier,
            loss_ppm: u32_field(&root, "loss_ppm", 0, 0, 1_000_000)?,
            loss_seed: field(&root, "loss_seed")
                .and_then(Value::as_u64)
                .unwrap_or(1),
            max_frames,
            fault: FaultInjection::from_json(&root)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINIMAL: &str = r#"{"key":"000102030405060708090a0b0c0d0e0f","salt":"a1b2c3d4","destination":"127.0.0.1:5000"}"#;

    #[test]
    fn defaults_fill_a_minimal_config() {
        let config = PipelineConfig::from_json(MINIMAL).unwrap();
        assert_eq!((config.width, config.height, config.fps), (1280, 720, 60));
        assert_eq!(config.fec_scheme, FecScheme::Gf16);
        assert_eq!(config.shard_bytes, 1408);
        assert_eq!(config.source, SourceKind::Synthetic);
        assert_eq!(config.key[15], 0x0f);
        assert_eq!(
            config.wire,
            Wire::Pf1 {
                salt: [0xa1, 0xb2, 0xc3, 0xd4],
                destination: "127.0.0.1:5000".parse().unwrap()
            }
        );
    }

    #[test]
    fn gamestream_wire_needs_no_destination_and_checks_its_fields() {
        let ok = r#"{"key":"000102030405060708090a0b0c0d0e0f","fec":{"scheme":"gf8"},"gamestream":{"packet_size":1024,"encrypt":true,"ping_payload":"0123456789ABCDEF","client_ip":"192.168.1.20"}}"#;
        let config = PipelineConfig::from_json(ok).unwrap();
        let Wire::GameStream(gs) = config.wire else {
            panic!("expected gamestream wire")
        };
        assert_eq!(gs.packet_size, 1024);
        assert!(gs.encrypt);
        assert_eq!(&gs.ping_payload.unwrap(), b"0123456789ABCDEF");
        assert_eq!(gs.client_ip, Some("192.168.1.20".parse().unwrap()));
        for (json, needle) in [
            (
                r#"{"key":"000102030405060708090a0b0c0d0e0f","fec":{"scheme":"gf8"},"gamestream":{"client_ip":"not-an-ip"}}"#,
                "gamestream.client_ip",
            ),
            (
                r#"{"key":"000102030405060708090a0b0c0d0e0f","gamestream":{}}"#,
                "gf8",
            ),
            (
                r#"{"key":"000102030405060708090a0b0c0d0e0f","fec":{"scheme":"gf8"},"gamestream":{"packet_size":1000}}"#,
                "multiple of 16",
            ),
            (
                r#"{"key":"000102030405060708090a0b0c0d0e0f","fec":{"scheme":"gf8"},"gamestream":{"ping_payload":"short"}}"#,
                "ping_payload",
            ),
        ] {
            let error = PipelineConfig::from_json(json).unwrap_err();
            assert!(error.contains(needle), "{json}: {error}");
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (
                r#"{"key":"00000000000000000000000000000000","salt":"a1b2c3d4","destination":"127.0.0.1:1"}"#,
                "all zero",
            ),
            (
                r#"{"key":"0102","salt":"a1b2c3d4","destination":"127.0.0.1:1"}"#,
                "key must be exactly 32",
            ),
            (
                r#"{"key":"000102030405060708090a0b0c0d0e0f","salt":"a1b2c3d4"}"#,
                "destination is required",
            ),
            (
                r#"{"key":"000102030405060708090a0b0c0d0e0f","salt":"a1b2c3d4","destination":"x","width":7}"#,
                "width",
            ),
            (
                r#"{"key":"000102030405060708090a0b0c0d0e0f","salt":"a1b2c3d4","destination":"127.0.0.1:1","codec":"vp9"}"#,
                "codec",
            ),
            (
                r#"{"key":"000102030405060708090a0b0c0d0e0f","salt":"a1b2c3d4","destination":"127.0.0.1:1","shard_bytes":1001}"#,
                "even",
            ),
            ("[]", "JSON object"),
            ("{", "not valid JSON"),
        ];
        for (json, needle) in cases {
            let error = PipelineConfig::from_json(json).unwrap_err();
            assert!(error.contains(needle), "{json}: {error}");
        }
    }

    #[test]
    fn fault_injection_is_off_by_default_and_validated() {
        assert_eq!(
            PipelineConfig::from_json(MINIMAL).unwrap().fault,
            FaultInjection::default()
        );
        let with = |fault: &str| {
            PipelineConfig::from_json(&MINIMAL.replace('}', &format!(",\"fault\":{fault}}}")))
        };
        let config =
            with(r#"{"fail_encoder_after_frames":30,"kill_worker_after_frames":90}"#).unwrap();
        assert_eq!(config.fault.fail_encoder_after_frames, Some(30));
        assert_eq!(config.fault.kill_worker_after_frames, Some(90));
        for (fault, needle) in [
            (r#"{"fail_encoder_after_frames":0}"#, "at least 1"),
            (
                r#"{"kill_worker_after_frames":"x"}"#,
                "kill_worker_after_frames",
            ),
            (r#"{"explode":1}"#, "fault.explode is not a known fault"),
            ("[]", "fault must be an object"),
        ] {
            let error = with(fault).unwrap_err();
            assert!(error.contains(needle), "{fault}: {error}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = PipelineConfig::from_json(&text);
        }
    }
}
