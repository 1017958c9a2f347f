//! End-to-end tests: synthetic BGRA frames through [`VideoEncoder`] and
//! back through [`VideoDecoder`], checking order, key frames, in-band
//! parameter sets, colour, rate control and error handling. Hardware
//! encoders are exercised only where their device nodes exist.

use std::path::Path;
use std::sync::OnceLock;

use proptest::collection::vec;
use proptest::prelude::*;

use super::bitstream::{self, av1, h264, hevc, SliceType};
use super::test_pattern::{self, BT601, BT709};
use super::*;

fn named(codec: Codec, encoder: &str, width: u32, height: u32, kbps: u32) -> EncoderSettings {
    let mut s = EncoderSettings::new(codec, width, height, 60, kbps);
    s.preference = EncoderPreference::Named(encoder.into());
    s.speed = Speed::Fastest;
    s
}

fn open(settings: &EncoderSettings) -> VideoEncoder {
    VideoEncoder::open(settings).unwrap_or_else(|e| panic!("{e}"))
}

fn position(types: &[u8], wanted: u8) -> Option<usize> {
    types.iter().position(|&t| t == wanted)
}

/// Encodes `count` moving-square frames (forcing an IDR at `force_at`),
/// decoding each packet as it comes out. Returns the packets and pictures
/// in output order; with `immediate`, every frame must come out of the call
/// that encoded it.
fn round_trip(
    settings: &EncoderSettings,
    count: u64,
    force_at: Option<u64>,
    immediate: bool,
) -> (Vec<EncodedFrame>, Vec<DecodedFrame>) {
    let mut enc = open(settings);
    let mut dec = VideoDecoder::open(settings.codec).unwrap();
    let mut packets = Vec::new();
    let mut pictures = Vec::new();
    let mut take = |packet: EncodedFrame, pictures: &mut Vec<DecodedFrame>| {
        let picture = dec
            .decode(&packet.data)
            .unwrap_or_else(|e| panic!("frame {}: {e}", packet.frame_index))
            .unwrap_or_else(|| panic!("frame {}: no picture", packet.frame_index));
        pictures.push(picture);
        packets.push(packet);
    };
    for i in 0..count {
        let frame = test_pattern::moving_square(settings.width, settings.height, i);
        let out = enc.encode(&frame, force_at == Some(i)).unwrap();
        if immediate {
            assert!(out.is_some(), "{}: frame {i} was held back", enc.chosen());
            assert_eq!(enc.frames_in_encoder(), 0);
        }
        if let Some(packet) = out {
            take(packet, &mut pictures);
        }
        let mut extra = EncodedFrame::default();
        while enc.take_ready(&mut extra) {
            take(std::mem::take(&mut extra), &mut pictures);
        }
    }
    for packet in enc.flush().unwrap() {
        take(packet, &mut pictures);
    }
    assert_eq!(packets.len() as u64, count, "{}", enc.chosen());
    for (i, (packet, picture)) in packets.iter().zip(&pictures).enumerate() {
        let i = i as u64;
        assert_eq!(packet.frame_index, i, "{}: output order", enc.chosen());
        assert_eq!(packet.pts, i as i64);
        assert_eq!(
            (picture.width, picture.height),
            (settings.width, settings.height)
        );
        assert_eq!(picture.pts, i as i64, "one packet in, one picture out");
        assert_eq!(
            test_pattern::read_stamp(picture),
            i,
            "{}: stamp",
            enc.chosen()
        );
        let keyframe = i == 0 || force_at == Some(i);
        assert_eq!(packet.keyframe, keyframe, "{}: frame {i}", enc.chosen());
    }
    (packets, pictures)
}

/// Mean absolute luma error of a decoded moving-square frame.
fn luma_error(picture: &DecodedFrame, index: u64, weights: (f64, f64)) -> f64 {
    let source = test_pattern::moving_square(picture.width, picture.height, index);
    let mut total = 0.0;
    for (px, &y) in source.data.chunks_exact(4).zip(&picture.y) {
        let expected = test_pattern::limited_luma([px[2], px[1], px[0]], weights.0, weights.1);
        total += (expected - f64::from(y)).abs();
    }
    total / picture.y.len() as f64
}

#[test]
fn h264_720p60_is_one_in_one_out_with_idr_only_on_request() {
    let settings = named(Codec::H264, "libx264", 1280, 720, 6000);
    const FORCED: u64 = 60;
    let (packets, pictures) = round_trip(&settings, 120, Some(FORCED), true);
    for packet in &packets {
        let i = packet.frame_index;
        let types = bitstream::h264_nal_types(&packet.data);
        if i == 0 || i == FORCED {
            let (sps, pps, idr) = (
                position(&types, h264::SPS),
                position(&types, h264::PPS),
                position(&types, h264::IDR),
            );
            assert!(
                sps.is_some() && pps.is_some() && idr.is_some(),
                "frame {i}: {types:?}"
            );
            assert!(
                sps < idr && pps < idr,
                "frame {i}: parameter sets first: {types:?}"
            );
        } else {
            for forbidden in [h264::IDR, h264::SPS, h264::PPS] {
                assert!(!types.contains(&forbidden), "frame {i}: {types:?}");
            }
            let slices: Vec<SliceType> = bitstream::annexb_nal_units(&packet.data)
                .iter()
                .filter(|nal| nal.first().map(|h| h & 0x1f) == Some(h264::SLICE))
                .map(|nal| bitstream::h264_slice_type(nal).unwrap())
                .collect();
            assert!(!slices.is_empty(), "frame {i}: {types:?}");
            assert!(
                slices.iter().all(|&t| t == SliceType::P),
                "frame {i}: {slices:?}"
            );
        }
    }
    for i in [0, 30, FORCED, 119] {
        let error = luma_error(&pictures[i as usize], i, BT709);
        assert!(error < 4.0, "frame {i}: mean luma error {error:.2}");
    }
}

/// The settings libx264 prints into the SEI of its first IDR.
fn x264_options(cbr_filler: bool) -> Vec<String> {
    let mut settings = named(Codec::H264, "libx264", 640, 360, 2000);
    settings.cbr_filler = cbr_filler;
    let mut enc = open(&settings);
    let frame = test_pattern::moving_square(640, 360, 0);
    let packet = enc.encode(&frame, false).unwrap().unwrap();
    let text: String = packet
        .data
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { ' ' })
        .collect();
    let at = text.find("options:").expect("x264 SEI options");
    text[at..].split_whitespace().map(String::from).collect()
}

#[test]
fn libx264_runs_with_the_low_latency_configuration() {
    let options = x264_options(false);
    // vbv_bufsize in kbit: 2000 kbit/s over 60 fps is one frame of 33 kbit.
    for wanted in [
        "bframes=0",
        "keyint=infinite",
        "scenecut=0",
        "rc_lookahead=0",
        "sliced_threads=1",
        "rc=cbr",
        "bitrate=2000",
        "vbv_maxrate=2000",
        "vbv_bufsize=33",
        "nal_hrd=none",
    ] {
        assert!(options.iter().any(|o| o == wanted), "{wanted}: {options:?}");
    }
    let filler = x264_options(true);
    for wanted in ["nal_hrd=cbr", "filler=1"] {
        assert!(filler.iter().any(|o| o == wanted), "{wanted}: {filler:?}");
    }
}

#[test]
fn colour_matrix_follows_the_frame_height() {
    const RED: [u8; 3] = [0, 0, 0xff]; // B, G, R
    const GREEN: [u8; 3] = [0, 0xff, 0];
    for (width, height, weights) in [(1280, 720, BT709), (640, 360, BT601)] {
        for bgr in [RED, GREEN] {
            let mut enc = open(&named(Codec::H264, "libx264", width, height, 4000));
            let mut dec = VideoDecoder::open(Codec::H264).unwrap();
            let packet = enc
                .encode(&test_pattern::solid(width, height, bgr), false)
                .unwrap()
                .unwrap();
            let picture = dec.decode(&packet.data).unwrap().unwrap();
            let got = test_pattern::centre_luma(&picture, 64);
            let rgb = [bgr[2], bgr[1], bgr[0]];
            let want = test_pattern::limited_luma(rgb, weights.0, weights.1);
            assert!(
                (got - want).abs() < 2.0,
                "{width}x{height} rgb {rgb:?}: luma {got:.1}, expected {want:.1}"
            );
        }
    }
}

#[test]
fn chroma_is_averaged_not_point_sampled() {
    const RED: [u8; 3] = [0, 0, 0xff]; // B, G, R
    const BLUE: [u8; 3] = [0xff, 0, 0];
    let mut enc = open(&named(Codec::H264, "libx264", 1280, 720, 8000));
    let mut dec = VideoDecoder::open(Codec::H264).unwrap();
    let frame = test_pattern::checkerboard(1280, 720, RED, BLUE);
    let packet = enc.encode(&frame, false).unwrap().unwrap();
    let picture = dec.decode(&packet.data).unwrap().unwrap();
    let (red_cb, red_cr) = test_pattern::limited_chroma([0xff, 0, 0], BT709.0, BT709.1);
    let (blue_cb, blue_cr) = test_pattern::limited_chroma([0, 0, 0xff], BT709.0, BT709.1);
    let cb = test_pattern::centre_chroma(&picture, &picture.u, 32);
    let cr = test_pattern::centre_chroma(&picture, &picture.v, 32);
    let (want_cb, want_cr) = ((red_cb + blue_cb) / 2.0, (red_cr + blue_cr) / 2.0);
    assert!(
        (cb - want_cb).abs() < 3.0 && (cr - want_cr).abs() < 3.0,
        "chroma ({cb:.1}, {cr:.1}), expected the average ({want_cb:.1}, {want_cr:.1})"
    );
}

#[test]
fn hevc_round_trip_has_vps_sps_pps_on_every_idr() {
    let settings = named(Codec::Hevc, "libx265", 640, 360, 2000);
    const FORCED: u64 = 15;
    let (packets, _) = round_trip(&settings, 30, Some(FORCED), true);
    for packet in &packets {
        let types = bitstream::hevc_nal_types(&packet.data);
        let idr = types
            .iter()
            .position(|&t| t == hevc::IDR_W_RADL || t == hevc::IDR_N_LP);
        if packet.keyframe {
            let idr = idr.unwrap_or_else(|| panic!("{types:?}"));
            for set in [hevc::VPS, hevc::SPS, hevc::PPS] {
                let at = position(&types, set).unwrap_or_else(|| panic!("{set}: {types:?}"));
                assert!(at < idr, "{types:?}");
            }
        } else {
            assert!(
                idr.is_none() && position(&types, hevc::SPS).is_none(),
                "{types:?}"
            );
        }
    }
}

fn av1_round_trip(encoder: &str, immediate: bool) {
    let settings = named(Codec::Av1, encoder, 640, 360, 2000);
    const FORCED: u64 = 15;
    let (packets, _) = round_trip(&settings, 30, Some(FORCED), immediate);
    for packet in &packets {
        let types = bitstream::av1_obu_types(&packet.data).unwrap();
        assert!(
            types.contains(&av1::FRAME) || types.contains(&av1::FRAME_HEADER),
            "{types:?}"
        );
        assert_eq!(
            types.contains(&av1::SEQUENCE_HEADER),
            packet.keyframe,
            "frame {}: sequence header on (and only on) key frames: {types:?}",
            packet.frame_index
        );
    }
}

#[test]
fn av1_svt_round_trip_with_key_frame_on_request() {
    // SVT-AV1 is asynchronous (packets arrive a few calls later), and it
    // reaches the key frame by reopening (KeyFrameRequest::Reopen).
    av1_round_trip("libsvtav1", false);
}

#[test]
fn av1_aom_round_trip_with_key_frame_on_request() {
    av1_round_trip("libaom-av1", true);
}

fn mean_size(packets: &[EncodedFrame]) -> f64 {
    packets.iter().map(|p| p.data.len() as f64).sum::<f64>() / packets.len() as f64
}

/// Encodes 60 noise frames at 2 Mbps, switches to 8 Mbps and encodes 60
/// more; returns the mean frame sizes of the settled halves (the last 30 of
/// each) and the path taken.
fn bitrate_step(settings: &EncoderSettings) -> (f64, f64, BitrateChange, VideoEncoder) {
    let mut enc = open(settings);
    let mut packets = Vec::new();
    let mut path = None;
    for i in 0..120 {
        if i == 60 {
            path = Some(enc.set_bitrate(8000).unwrap());
            assert_eq!(enc.settings().bitrate_kbps, 8000);
        }
        let frame = test_pattern::noise(settings.width, settings.height, i);
        packets.extend(enc.encode(&frame, false).unwrap());
    }
    packets.extend(enc.flush().unwrap());
    assert_eq!(packets.len(), 120);
    // Noise is a scene cut every frame: still no key frames of its own.
    let reopened = path == Some(BitrateChange::Reopened);
    for (i, p) in packets.iter().enumerate() {
        let keyframe = i == 0 || (reopened && i == 60);
        assert_eq!(p.keyframe, keyframe, "{}: frame {i}", enc.chosen());
    }
    let before = mean_size(&packets[30..60]);
    let after = mean_size(&packets[90..120]);
    eprintln!(
        "{}: mean frame {before:.0} B at 2 Mbps, {after:.0} B at 8 Mbps ({:?})",
        enc.chosen(),
        path.unwrap()
    );
    (before, after, path.unwrap(), enc)
}

#[test]
fn libx264_changes_bitrate_in_place() {
    let settings = named(Codec::H264, "libx264", 1280, 720, 2000);
    let (before, after, path, enc) = bitrate_step(&settings);
    assert_eq!(path, BitrateChange::Reconfigured);
    assert_eq!(enc.reopens(), 0);
    assert!(
        after > 2.0 * before,
        "{before:.0} -> {after:.0} bytes/frame"
    );
    // Each half near its own per-frame budget (noise saturates the rate).
    let budget = |kbps: f64| kbps * 1000.0 / 60.0 / 8.0;
    assert!(before < 1.3 * budget(2000.0), "{before:.0}");
    assert!(after > 0.5 * budget(8000.0), "{after:.0}");
}

#[test]
fn libx265_changes_bitrate_by_reopening_with_an_idr() {
    let settings = named(Codec::Hevc, "libx265", 640, 360, 2000);
    let (before, after, path, enc) = bitrate_step(&settings);
    assert_eq!(path, BitrateChange::Reopened);
    assert_eq!(enc.reopens(), 1);
    assert!(
        after > 2.0 * before,
        "{before:.0} -> {after:.0} bytes/frame"
    );
}

#[test]
fn reopened_encoder_continues_the_stream_with_an_idr() {
    // cbr_filler makes libx264 reopen (x264 keeps HRD parameters fixed).
    let mut settings = named(Codec::H264, "libx264", 640, 360, 2000);
    settings.cbr_filler = true;
    let mut enc = open(&settings);
    assert_eq!(enc.bitrate_change(), BitrateChange::Reopened);
    let mut dec = VideoDecoder::open(Codec::H264).unwrap();
    for i in 0..20 {
        if i == 10 {
            assert_eq!(enc.set_bitrate(4000), Ok(BitrateChange::Reopened));
        }
        let packet = enc
            .encode(&test_pattern::moving_square(640, 360, i), false)
            .unwrap()
            .unwrap();
        assert_eq!(packet.frame_index, i);
        assert_eq!(packet.pts, i as i64, "pts continue across the reopen");
        assert_eq!(packet.keyframe, i == 0 || i == 10, "frame {i}");
        let picture = dec.decode(&packet.data).unwrap().unwrap();
        assert_eq!(test_pattern::read_stamp(&picture), i);
    }
    assert_eq!(enc.reopens(), 1);
}

#[test]
fn cbr_filler_pads_every_frame_to_the_rate() {
    let mut settings = named(Codec::H264, "libx264", 1280, 720, 4000);
    settings.cbr_filler = true;
    let mut enc = open(&settings);
    let budget = 4000.0 * 1000.0 / 60.0 / 8.0;
    let mut sizes = Vec::new();
    for i in 0..120 {
        // Easy content: without filler these frames are far below budget.
        let packet = enc
            .encode(&test_pattern::moving_square(1280, 720, i), false)
            .unwrap()
            .unwrap();
        let types = bitstream::h264_nal_types(&packet.data);
        if i > 0 {
            assert!(types.contains(&h264::FILLER), "frame {i}: {types:?}");
        }
        sizes.push(packet.data.len() as f64);
    }
    let min = sizes.iter().cloned().fold(f64::MAX, f64::min);
    let max = sizes.iter().cloned().fold(0.0, f64::max);
    eprintln!("cbr_filler: budget {budget:.0} B, frames {min:.0}..={max:.0} B");
    for (i, size) in sizes.iter().enumerate() {
        assert!(
            (size - budget).abs() <= 0.25 * budget,
            "frame {i}: {size} bytes vs budget {budget:.0}"
        );
    }
}

#[test]
fn ten_bit_hevc_round_trips() {
    let mut settings = named(Codec::Hevc, "libx265", 640, 360, 2000);
    settings.bit_depth = BitDepth::Ten;
    let (packets, pictures) = round_trip(&settings, 10, None, true);
    assert_eq!(packets.len(), 10);
    assert!(pictures.iter().all(|p| p.bit_depth == 10));
    let error = luma_error(&pictures[5], 5, BT601);
    assert!(error < 4.0, "mean luma error {error:.2}");
}

#[test]
fn yuv444_h264_uses_high_444_and_round_trips() {
    let mut settings = named(Codec::H264, "libx264", 640, 360, 4000);
    settings.chroma = Chroma::Yuv444;
    let (packets, pictures) = round_trip(&settings, 10, None, true);
    let sps = bitstream::annexb_nal_units(&packets[0].data)
        .into_iter()
        .find(|nal| nal[0] & 0x1f == h264::SPS)
        .unwrap();
    const PROFILE_HIGH_444_PREDICTIVE: u8 = 244;
    assert_eq!(sps[1], PROFILE_HIGH_444_PREDICTIVE);
    assert!(pictures
        .iter()
        .all(|p| (p.chroma_width, p.chroma_height) == (640, 360)));
}

#[test]
fn unsupported_combinations_say_why() {
    let mut svt = named(Codec::Av1, "libsvtav1", 640, 360, 2000);
    svt.chroma = Chroma::Yuv444;
    match VideoEncoder::open(&svt) {
        Err(EncodeError::Unsupported(reason)) => {
            assert!(
                reason.contains("libsvtav1") && reason.contains("yuv444p"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }

    let mut vaapi = named(Codec::H264, "h264_vaapi", 640, 360, 2000);
    vaapi.chroma = Chroma::Yuv444;
    match VideoEncoder::open(&vaapi) {
        Err(EncodeError::Unsupported(reason)) => assert!(reason.contains("VAAPI"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // No HEVC encoder pads with filler data.
    let mut filler = EncoderSettings::new(Codec::Hevc, 640, 360, 60, 2000);
    filler.cbr_filler = true;
    match VideoEncoder::open(&filler) {
        Err(EncodeError::Unsupported(reason)) => {
            for name in ["hevc_nvenc", "hevc_vaapi", "libx265"] {
                assert!(reason.contains(name), "{reason}");
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn auto_falls_back_to_software_and_says_why() {
    let hardware = Path::new("/dev/nvidia0").exists() || Path::new(&libav::vaapi_device()).exists();
    let enc = open(&EncoderSettings::new(Codec::H264, 640, 360, 60, 2000));
    // On any machine: every encoder passed over is named with a reason, and the chosen one is not
    // among them.
    for s in enc.skipped() {
        assert!(!s.reason.is_empty(), "{}", s.encoder);
        assert_ne!(s.encoder, enc.chosen());
    }
    if hardware {
        // A hardware encoder may legitimately win here; the exact fallback chain below is what a
        // machine without NVIDIA or VAAPI devices must show.
        assert!(
            enc.chosen() != "libx264" || enc.skipped().len() == 2,
            "{} chosen, skipped {:?}",
            enc.chosen(),
            enc.skipped().iter().map(|s| &s.encoder).collect::<Vec<_>>()
        );
    } else {
        check_software_fallback(&enc);
    }

    let mut software = EncoderSettings::new(Codec::Av1, 640, 360, 60, 2000);
    software.preference = EncoderPreference::Software;
    let enc = open(&software);
    assert_eq!(enc.chosen(), "libsvtav1");
    assert!(enc.skipped().is_empty());
}

/// Without NVIDIA or VAAPI devices, Auto lands on libx264 after trying nvenc and VAAPI.
fn check_software_fallback(enc: &VideoEncoder) {
    assert_eq!(enc.chosen(), "libx264");
    assert_eq!(enc.backend(), Backend::Software);
    let skipped: Vec<&str> = enc.skipped().iter().map(|s| s.encoder.as_str()).collect();
    assert_eq!(skipped, ["h264_nvenc", "h264_vaapi (low_power)"]);
    for s in enc.skipped() {
        assert_eq!(s.kind, SkipKind::OpenFailed);
        assert!(!s.reason.is_empty());
    }
    assert!(
        enc.skipped()[1].reason.starts_with("no VAAPI device: "),
        "{}",
        enc.skipped()[1].reason
    );
}

#[test]
fn encoder_and_decoder_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<VideoEncoder>();
    assert_send::<VideoDecoder>();
    let mut enc = open(&named(Codec::H264, "libx264", 320, 240, 1000));
    let mut dec = VideoDecoder::open(Codec::H264).unwrap();
    let picture = std::thread::spawn(move || {
        let frame = test_pattern::moving_square(320, 240, 7);
        let packet = enc.encode(&frame, false).unwrap().unwrap();
        dec.decode(&packet.data).unwrap().unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(test_pattern::read_stamp(&picture), 7);
}

#[test]
fn encode_into_reuses_the_output_buffer() {
    let mut enc = open(&named(Codec::H264, "libx264", 640, 360, 2000));
    let mut out = EncodedFrame {
        data: Vec::with_capacity(1 << 20),
        ..EncodedFrame::default()
    };
    let buffer = out.data.as_ptr();
    for i in 0..10 {
        let frame = test_pattern::moving_square(640, 360, i);
        assert!(enc.encode_into(&frame, false, &mut out).unwrap());
        assert_eq!(out.frame_index, i);
        assert_eq!(out.data.as_ptr(), buffer, "frame {i} reallocated");
        assert!(out.convert_ns > 0 && out.encode_ns > 0);
    }
}

#[test]
fn frames_of_another_size_are_scaled() {
    let mut enc = open(&named(Codec::H264, "libx264", 640, 360, 2000));
    let mut dec = VideoDecoder::open(Codec::H264).unwrap();
    let white = test_pattern::solid(1280, 720, [0xff; 3]);
    let packet = enc.encode(&white, false).unwrap().unwrap();
    let picture = dec.decode(&packet.data).unwrap().unwrap();
    assert_eq!((picture.width, picture.height), (640, 360));
    let luma = test_pattern::centre_luma(&picture, 32);
    assert!((luma - 235.0).abs() < 2.0, "{luma}");
}

#[test]
fn bad_frames_and_finished_encoders_are_errors() {
    let mut enc = open(&named(Codec::H264, "libx264", 320, 240, 1000));
    let good = test_pattern::moving_square(320, 240, 0);

    let mut short = good.clone();
    short.data.truncate(short.data.len() - 1);
    let mut narrow = good.clone();
    narrow.stride = 320 * 4 - 4;
    let mut empty = good.clone();
    empty.width = 0;
    for (what, frame) in [("short", short), ("narrow", narrow), ("empty", empty)] {
        match enc.encode(&frame, false) {
            Err(EncodeError::InvalidFrame(m)) => assert!(!m.is_empty()),
            other => panic!("{what}: {other:?}"),
        }
    }
    // A padded stride is fine.
    let mut padded = good.clone();
    padded.stride = 320 * 4 + 64;
    padded.data = padded
        .data
        .chunks(320 * 4)
        .flat_map(|row| row.iter().copied().chain([0; 64]))
        .collect();
    assert!(enc.encode(&padded, false).unwrap().is_some());

    assert!(enc.flush().unwrap().is_empty());
    assert_eq!(enc.encode(&good, false), Err(EncodeError::Finished));
    assert_eq!(enc.set_bitrate(2000), Err(EncodeError::Finished));
    assert_eq!(enc.flush(), Ok(Vec::new()));
}

// Hardware round trips are `#[ignore]`d and named `needs_<device>_…`: plain `cargo test` reports them
// as skipped, and `packaging/bootstrap.sh` runs them (`--ignored needs_nvidia_` / `needs_vaapi_`)
// when the device node exists, where a failure to open the encoder fails the test.
#[test]
#[ignore = "needs an NVIDIA GPU (/dev/nvidia0; bootstrap.sh runs it when present)"]
fn needs_nvidia_nvenc_round_trip() {
    round_trip(
        &named(Codec::H264, "h264_nvenc", 1280, 720, 6000),
        30,
        Some(15),
        true,
    );
    round_trip(
        &named(Codec::Hevc, "hevc_nvenc", 1280, 720, 6000),
        30,
        Some(15),
        true,
    );
}

#[test]
#[ignore = "needs a VAAPI render node (/dev/dri/renderD128; bootstrap.sh runs it when present)"]
fn needs_vaapi_round_trip() {
    round_trip(
        &named(Codec::H264, "h264_vaapi", 1280, 720, 6000),
        30,
        Some(15),
        true,
    );
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank] as f64 / 1e6
}

#[test]
fn libx264_1080p60_timing_report() {
    let settings = named(Codec::H264, "libx264", 1920, 1080, 20_000);
    let mut enc = open(&settings);
    let mut out = EncodedFrame::default();
    let (mut convert, mut encode) = (Vec::new(), Vec::new());
    const FRAMES: u64 = 120;
    let frames: Vec<Frame> = (0..8)
        .map(|i| test_pattern::moving_square(1920, 1080, i))
        .collect();
    for i in 0..FRAMES {
        let mut frame = frames[(i % 8) as usize].clone();
        frame.index = i;
        assert!(enc.encode_into(&frame, false, &mut out).unwrap());
        convert.push(out.convert_ns);
        encode.push(out.encode_ns);
    }
    // The first frame pays for thread start-up and the IDR; report it apart.
    let (first_convert, first_encode) = (convert[0], encode[0]);
    let mut convert = convert.split_off(1);
    let mut encode = encode.split_off(1);
    convert.sort_unstable();
    encode.sort_unstable();
    eprintln!(
        "libx264 1920x1080@60 ultrafast/zerolatency 20 Mbps, frames 2..={FRAMES}: \
         convert p50 {:.2} ms p99 {:.2} ms max {:.2} ms; \
         encode p50 {:.2} ms p99 {:.2} ms max {:.2} ms; \
         first frame convert {:.2} ms encode {:.2} ms",
        percentile(&convert, 0.5),
        percentile(&convert, 0.99),
        percentile(&convert, 1.0),
        percentile(&encode, 0.5),
        percentile(&encode, 0.99),
        percentile(&encode, 1.0),
        first_convert as f64 / 1e6,
        first_encode as f64 / 1e6,
    );
}

/// A short x264 stream shared by the damage tests.
fn x264_stream() -> &'static [EncodedFrame] {
    static STREAM: OnceLock<Vec<EncodedFrame>> = OnceLock::new();
    STREAM.get_or_init(|| {
        let mut enc = open(&named(Codec::H264, "libx264", 320, 240, 1000));
        (0..8)
            .map(|i| {
                let frame = test_pattern::moving_square(320, 240, i);
                enc.encode(&frame, false).unwrap().unwrap()
            })
            .collect()
    })
}

#[test]
fn truncated_idr_is_an_error() {
    let stream = x264_stream();
    let mut dec = VideoDecoder::open(Codec::H264).unwrap();
    let idr = &stream[0].data;
    let result = dec.decode(&idr[..idr.len() / 2]);
    assert!(
        matches!(result, Err(DecodeError::InvalidData { .. })),
        "{result:?}"
    );
    // The decoder recovers with the next intact key frame.
    let mut dec = VideoDecoder::open(Codec::H264).unwrap();
    assert!(dec.decode(&idr[..idr.len() / 2]).is_err());
    assert!(dec.decode(idr).unwrap().is_some());
}

#[test]
fn garbage_is_reported_as_errors() {
    // Deterministic random packets (xorshift64): every decoder must report
    // at least some of them as damaged rather than silently skip them all.
    let mut state = 0x1234_5678_9abc_def0_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for codec in [Codec::H264, Codec::Hevc, Codec::Av1] {
        let mut errors = 0;
        for _ in 0..50 {
            let mut dec = VideoDecoder::open(codec).unwrap();
            let len = (next() % 2000 + 1) as usize;
            let packet: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            match dec.decode(&packet) {
                Err(DecodeError::InvalidData { message, .. }) => {
                    assert!(!message.is_empty());
                    errors += 1;
                }
                Err(other) => panic!("{codec}: {other}"),
                Ok(None) => {}
                Ok(Some(picture)) => panic!("{codec}: garbage decoded to {picture:?}"),
            }
        }
        assert!(errors > 0, "{codec}: no garbage packet was reported");
    }
}

fn sane(picture: &DecodedFrame) {
    assert!(picture.width > 0 && picture.height > 0);
    assert_eq!(picture.y.len(), (picture.width * picture.height) as usize);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes_never_crash_a_decoder(
        codec in prop_oneof![Just(Codec::H264), Just(Codec::Hevc), Just(Codec::Av1)],
        packets in vec(vec(any::<u8>(), 1..2048), 1..4),
        start_code in any::<bool>(),
    ) {
        let mut dec = VideoDecoder::open(codec).unwrap();
        for mut packet in packets {
            if start_code {
                packet.splice(0..0, [0, 0, 0, 1]);
            }
            if let Ok(Some(picture)) = dec.decode(&packet) {
                sane(&picture);
            }
        }
    }

    #[test]
    fn damaged_streams_never_crash_the_decoder(
        cuts in vec((any::<prop::sample::Index>(), any::<bool>(), any::<u8>()), 8),
    ) {
        let stream = x264_stream();
        let mut dec = VideoDecoder::open(Codec::H264).unwrap();
        for (packet, (at, truncate, byte)) in stream.iter().zip(cuts) {
            let mut data = packet.data.clone();
            let at = at.index(data.len());
            if truncate {
                data.truncate(at.max(1));
            } else {
                data[at] ^= byte | 1;
            }
            if let Ok(Some(picture)) = dec.decode(&data) {
                sane(&picture);
            }
        }
    }
}

/// Encodes `count` frames from `start` into `dec`; every packet must decode to a picture.
fn encode_and_decode(
    enc: &mut VideoEncoder,
    dec: &mut VideoDecoder,
    start: u64,
    count: u64,
) -> Vec<EncodedFrame> {
    let settings = enc.settings().clone();
    let mut packets = Vec::new();
    for i in start..start + count {
        let frame = test_pattern::moving_square(settings.width, settings.height, i);
        if let Some(packet) = enc.encode(&frame, false).unwrap() {
            dec.decode(&packet.data)
                .unwrap_or_else(|e| panic!("{}: frame {i}: {e}", enc.chosen()))
                .unwrap_or_else(|| panic!("{}: frame {i}: no picture", enc.chosen()));
            packets.push(packet);
        }
    }
    packets
}

#[test]
fn a_failed_libx264_falls_back_to_a_fresh_instance_whose_first_frame_is_an_idr() {
    let settings = named(Codec::H264, "libx264", 320, 240, 1000);
    let mut enc = open(&settings);
    let mut dec = VideoDecoder::open(Codec::H264).unwrap();
    let before = encode_and_decode(&mut enc, &mut dec, 0, 10);
    assert_eq!(before.iter().filter(|p| p.keyframe).count(), 1);
    // libx264 is the last of the H.264 chain: its fallback is a fresh libx264.
    let mut fallback = enc.open_fallback().unwrap();
    assert_eq!(fallback.chosen(), "libx264");
    let after = encode_and_decode(&mut fallback, &mut dec, 10, 10);
    assert!(
        after[0].keyframe,
        "the first frame after the fallback is an IDR"
    );
    assert_eq!(after.iter().filter(|p| p.keyframe).count(), 1);
}

#[test]
fn a_failed_svt_av1_falls_back_to_the_next_encoder_of_the_chain() {
    let settings = named(Codec::Av1, "libsvtav1", 320, 240, 1000);
    let enc = open(&settings);
    let mut fallback = enc.open_fallback().unwrap();
    assert_eq!(fallback.chosen(), "libaom-av1");
    let mut dec = VideoDecoder::open(Codec::Av1).unwrap();
    let after = encode_and_decode(&mut fallback, &mut dec, 0, 5);
    assert!(after[0].keyframe);
}
