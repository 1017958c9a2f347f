//! The host's GameStream audio stream (`docs/gamestream-protocol.md` §8): PCM source → Opus (CBR,
//! constant packet size so RS(4,2) FEC applies) → RTP + optional AES-CBC + FEC packets → UDP to the
//! address the client's first ping came from.

use super::client_ping::{bind_client_by_ping, client_ip, ping_payload, PingFilter};
use super::config::{field, hex_bytes, string_field, u32_field};
use super::worker::{Worker, WorkerShared};
use crate::audio::opus::{FrameDuration, OpusEncoder, OpusStreamConfig, MAX_CHANNELS};
use crate::audio::pulse::{PulseOptions, PulseSource};
use crate::audio::tone::{Pacing, ToneSource};
use crate::audio::{AudioFrame, AudioSource, ChannelLayout};
use crate::packet::gamestream_audio::{GsAudioEncryption, GsAudioPacketizer};
use crate::send::impairment::Impairment;
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum AudioSourceKind {
    /// One sine per channel (440 Hz × (1 + channel/2)): always available.
    Tone,
    /// PulseAudio monitor capture (the desktop's sound).
    Pulse {
        server: Option<String>,
        device: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct GsAudioSenderConfig {
    pub source: AudioSourceKind,
    pub stream: OpusStreamConfig,
    pub bitrate_bps: u32,
    pub duration: FrameDuration,
    pub bind: SocketAddr,
    pub ping_payload: Option<[u8; 16]>,
    /// The session owner's IP: only its pings bind the stream.
    pub client_ip: Option<std::net::IpAddr>,
    pub ping_timeout_ms: u32,
    pub encryption: Option<GsAudioEncryption>,
    pub loss_ppm: u32,
}

/// Parses `channels`, `streams`, `coupled_streams` and `mapping` (GameStream's surround params).
pub(crate) fn opus_stream_config(root: &Value) -> Result<OpusStreamConfig, String> {
    let channels = u32_field(root, "channels", 2, 2, 8)? as u8;
    let layout = ChannelLayout::from_channel_count(channels)
        .ok_or_else(|| format!("channels must be 2, 6 or 8, got {channels}"))?;
    let default = OpusStreamConfig::for_layout(layout, crate::audio::opus::AudioQuality::Normal);
    let mut config = OpusStreamConfig {
        channels,
        streams: u32_field(root, "streams", u32::from(default.streams), 1, 8)? as u8,
        coupled_streams: u32_field(
            root,
            "coupled_streams",
            u32::from(default.coupled_streams),
            0,
            4,
        )? as u8,
        mapping: default.mapping,
    };
    if let Some(mapping) = field(root, "mapping") {
        let values = mapping
            .as_array()
            .filter(|a| a.len() == usize::from(channels))
            .ok_or("mapping must be an array with one entry per channel")?;
        config.mapping = [0; MAX_CHANNELS];
        for (slot, value) in config.mapping.iter_mut().zip(values) {
            *slot = value
                .as_u64()
                .filter(|v| *v < 255)
                .ok_or("mapping entries must be integers below 255")? as u8;
        }
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// `encrypt` + `key` (32 hex digits) + `rikeyid` (u32) → CBC settings.
pub(crate) fn audio_encryption(root: &Value) -> Result<Option<GsAudioEncryption>, String> {
    if !field(root, "encrypt")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return Ok(None);
    }
    let key = hex_bytes::<16>(root, "key")?;
    let ri_key_id = field(root, "rikeyid")
        .and_then(Value::as_u64)
        .filter(|v| *v <= u64::from(u32::MAX))
        .ok_or("rikeyid must be an unsigned 32-bit integer")? as u32;
    Ok(Some(GsAudioEncryption { key, ri_key_id }))
}

impl GsAudioSenderConfig {
    pub fn from_json(text: &str) -> Result<Self, String> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| format!("config is not valid JSON: {e}"))?;
        if !root.is_object() {
            return Err("config must be a JSON object".into());
        }
        let source = match field(&root, "source") {
            None => AudioSourceKind::Tone,
            Some(source) => match source.get("kind").and_then(Value::as_str) {
                Some("tone") => AudioSourceKind::Tone,
                Some("pulse") => AudioSourceKind::Pulse {
                    server: field(source, "server")
                        .and_then(Value::as_str)
                        .map(String::from),
                    device: field(source, "device")
                        .and_then(Value::as_str)
                        .map(String::from),
                },
                other => return Err(format!("source.kind must be tone or pulse, got {other:?}")),
            },
        };
        let stream = opus_stream_config(&root)?;
        let duration =
            FrameDuration::from_millis(u32_field(&root, "packet_duration_ms", 5, 5, 20)?)
                .map_err(|e| e.to_string())?;
        let bind = string_field(&root, "bind", "0.0.0.0:48000")?;
        Ok(Self {
            source,
            stream,
            // Sunshine's stereo bitrate; surround callers pass theirs.
            bitrate_bps: u32_field(&root, "bitrate_bps", 96_000, 6_000, 4_000_000)?,
            duration,
            bind: bind
                .parse()
                .map_err(|_| format!("bind must be IP:PORT, got {bind:?}"))?,
            ping_payload: ping_payload(&root)?,
            client_ip: client_ip(&root)?,
            ping_timeout_ms: u32_field(&root, "ping_timeout_ms", 10_000, 100, 600_000)?,
            encryption: audio_encryption(&root)?,
            loss_ppm: u32_field(&root, "loss_ppm", 0, 0, 1_000_000)?,
        })
    }
}

fn open_audio_source(config: &GsAudioSenderConfig) -> Result<Box<dyn AudioSource>, String> {
    let layout = config.stream.layout().map_err(|e| e.to_string())?;
    match &config.source {
        AudioSourceKind::Tone => Ok(Box::new(ToneSource::new(layout, Pacing::RealTime))),
        AudioSourceKind::Pulse { server, device } => {
            let mut options = PulseOptions::new(layout);
            options.server = server.clone();
            options.device = device.clone();
            PulseSource::open(&options)
                .map(|s| Box::new(s) as Box<dyn AudioSource>)
                .map_err(|e| format!("pulse capture: {e}"))
        }
    }
}

/// Opens source, encoder and socket synchronously (errors come back to the caller), then streams
/// on one thread until stopped.
pub fn start_gs_audio_sender(config: GsAudioSenderConfig) -> Result<Worker, String> {
    let mut source = open_audio_source(&config)?;
    let mut encoder = OpusEncoder::new(config.stream, config.duration, config.bitrate_bps)
        .map_err(|e| format!("opus: {e}"))?;
    let socket =
        UdpSocket::bind(config.bind).map_err(|e| format!("socket {}: {e}", config.bind))?;
    let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
    let source_name = source.name();
    Worker::spawn("pf-gs-audio", port, move |shared| {
        shared.set("source", source_name);
        let timeout = Duration::from_millis(u64::from(config.ping_timeout_ms));
        let filter = PingFilter {
            payload: config.ping_payload,
            owner: config.client_ip,
        };
        let client = match bind_client_by_ping(&socket, &filter, timeout, &shared.stop) {
            Ok(client) => client,
            Err(error) => {
                shared.event("error", &[("message", format!("audio: {error}").into())]);
                return;
            }
        };
        shared.add("ignored_datagrams", client.ignored);
        shared.add("foreign_pings", client.foreign_pings);
        shared.event(
            "client_bound",
            &[
                ("address", client.address.to_string().into()),
                ("foreign_pings", client.foreign_pings.into()),
            ],
        );
        stream_audio(&config, source.as_mut(), &mut encoder, &socket, shared);
    })
}

fn stream_audio(
    config: &GsAudioSenderConfig,
    source: &mut dyn AudioSource,
    encoder: &mut OpusEncoder,
    socket: &UdpSocket,
    shared: &WorkerShared,
) {
    let mut packetizer =
        GsAudioPacketizer::new(config.duration.millis(), config.encryption.clone());
    let mut impairment = Impairment::new(config.loss_ppm, 1);
    let mut frame = AudioFrame::new();
    let mut opus = vec![0u8; encoder.max_packet_bytes()];
    while !shared.stopping() {
        if let Err(error) = source.read(&mut frame, config.duration.samples_per_channel()) {
            shared.event(
                "error",
                &[("message", format!("audio capture: {error}").into())],
            );
            return;
        }
        let len = match encoder.encode(&frame.samples, &mut opus) {
            Ok(len) => len,
            Err(error) => {
                shared.add("encode_errors", 1);
                shared.event("error", &[("message", format!("opus: {error}").into())]);
                continue;
            }
        };
        let batch = match packetizer.packetize(&opus[..len]) {
            Ok(batch) => batch,
            Err(error) => {
                shared.add("packetize_errors", 1);
                shared.event(
                    "error",
                    &[("message", format!("audio packet: {error}").into())],
                );
                continue;
            }
        };
        shared.add("opus_packets", 1);
        for datagram in batch.datagrams() {
            if impairment.should_drop() {
                shared.add("packets_dropped_impairment", 1);
                continue;
            }
            match socket.send(datagram) {
                Ok(_) => {
                    shared.add("packets_sent", 1);
                    shared.add("bytes_sent", datagram.len() as u64);
                }
                Err(_) => shared.add("send_errors", 1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_errors() {
        let config = GsAudioSenderConfig::from_json(r#"{"bind":"127.0.0.1:0"}"#).unwrap();
        assert_eq!(config.stream, OpusStreamConfig::STEREO);
        assert_eq!(config.duration, FrameDuration::Ms5);
        assert!(config.encryption.is_none());
        let surround = GsAudioSenderConfig::from_json(
            r#"{"channels":6,"streams":6,"coupled_streams":0,"mapping":[0,1,2,3,4,5],"bitrate_bps":1536000,"encrypt":true,"key":"000102030405060708090a0b0c0d0e0f","rikeyid":16909060}"#,
        )
        .unwrap();
        assert_eq!(surround.stream.streams, 6);
        assert_eq!(surround.encryption.unwrap().ri_key_id, 16909060);
        for (json, needle) in [
            (r#"{"channels":4}"#, "channels"),
            (r#"{"packet_duration_ms":7}"#, "duration"),
            (
                r#"{"encrypt":true,"key":"000102030405060708090a0b0c0d0e0f"}"#,
                "rikeyid",
            ),
            (r#"{"ping_payload":"abc"}"#, "ping_payload"),
            (r#"{"mapping":[0]}"#, "mapping"),
            (r#"{"client_ip":"127.0.0.1:80"}"#, "client_ip"),
            ("[]", "object"),
        ] {
            let error = GsAudioSenderConfig::from_json(json).unwrap_err();
            assert!(error.to_lowercase().contains(needle), "{json}: {error}");
        }
    }
}
