//! Acceptance: synthetic 1280×720@60 → H.264 (software) → 20 % GF(2^16) FEC + AES-GCM → UDP on
//! loopback with 10 % random loss injected at the sender → receiver recovers ≥ 99 % of frames
//! byte-exact, decodes them with libavcodec and reads back the embedded frame index.

use punktfunk_native::pipeline::config::PipelineConfig;
use punktfunk_native::pipeline::video_receiver::{ReceiverConfig, VideoReceiver};
use punktfunk_native::pipeline::video_sender::{IdrTrigger, VideoSender};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const SALT: &str = "cafebabe";
const FRAMES: u64 = 300;

/// Waits (up to 10 s: loopback delivers in microseconds, the margin covers a loaded machine) until the
/// receiver has taken in every datagram the sender put on the wire, instead of sleeping for a fixed time.
fn wait_for_in_flight_datagrams(sender: &VideoSender, receiver: &VideoReceiver) {
    let sent = sender.with_stats(|s| s.counters.packets_sent);
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.with_state(|state| state.counters.datagrams) < sent && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn lossy_loopback_recovers_and_decodes_99_percent_of_frames() {
    let trigger: Arc<OnceLock<IdrTrigger>> = Arc::new(OnceLock::new());
    let callback_trigger = trigger.clone();
    let receiver_config = ReceiverConfig::from_json(&format!(
        r#"{{"bind":"127.0.0.1:0","key":"{KEY}","salt":"{SALT}","decode":"h264","verify_stamps":true}}"#
    ))
    .unwrap();
    let mut receiver = VideoReceiver::start(
        receiver_config,
        Some(Box::new(move || {
            // The client's loss → keyframe request, as the control stream would carry it.
            if let Some(trigger) = callback_trigger.get() {
                trigger.request();
            }
        })),
    )
    .unwrap();
    // 100 Mbit/s CBR with filler makes ~150-shard frames: at 20 % parity a frame survives 10 %
    // random loss unless > 30 of ~178 packets drop (p ≈ 0.1 %). Small frames need a higher
    // parity floor; see docs/perf.md.
    let config = PipelineConfig::from_json(&format!(
        r#"{{"width":1280,"height":720,"fps":60,"codec":"h264","encoder":"software","bitrate_kbps":100000,
            "cbr_filler":true,"fec":{{"scheme":"gf16","percent":20}},"key":"{KEY}","salt":"{SALT}",
            "destination":"{}","loss_ppm":100000,"loss_seed":7,"max_frames":{FRAMES}}}"#,
        receiver.local_addr()
    ))
    .unwrap();
    let mut sender = VideoSender::start(config).unwrap();
    let _ = trigger.set(sender.idr_trigger());

    let deadline = Instant::now() + Duration::from_secs(60);
    while !sender.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_in_flight_datagrams(&sender, &receiver);
    sender.stop();
    receiver.stop();

    let sent: HashMap<u32, u64> = sender.sent_hashes().into_iter().collect();
    let sender_stats = sender.stats_json();
    let receiver_stats = receiver.stats_json();
    println!("sender: {sender_stats}\nreceiver: {receiver_stats}");
    let (dropped, frames_sent) = sender.with_stats(|s| {
        (
            s.counters.packets_dropped_impairment,
            s.counters.frames_sent,
        )
    });
    let packets = sender.with_stats(|s| s.counters.packets_sent) + dropped;
    let loss = dropped as f64 / packets as f64;
    assert!(
        (0.08..0.12).contains(&loss),
        "impairment dropped {loss:.3} of packets"
    );
    assert_eq!(frames_sent, FRAMES, "every frame was sent");

    receiver.with_state(|state| {
        let exact = state
            .frame_hashes
            .iter()
            .filter(|(index, hash)| sent.get(index) == Some(hash))
            .count();
        let c = &state.counters;
        assert_eq!(c.auth_failures, 0);
        assert!(
            c.frames_fec_recovered > FRAMES / 2,
            "FEC did the recovering: {}",
            c.frames_fec_recovered
        );
        assert!(
            exact as f64 >= 0.99 * FRAMES as f64,
            "byte-exact frames: {exact}/{FRAMES}"
        );
        assert_eq!(
            exact,
            state.frame_hashes.len(),
            "every delivered frame is byte-exact"
        );
        assert!(
            c.stamps_verified as f64 >= 0.98 * FRAMES as f64,
            "stamps verified: {}",
            c.stamps_verified
        );
        assert_eq!(
            c.stamps_mismatched, 0,
            "no decoded frame showed the wrong index"
        );
    });
}

#[test]
fn wrong_key_is_rejected_and_counted() {
    let receiver_config = ReceiverConfig::from_json(&format!(
        r#"{{"bind":"127.0.0.1:0","key":"000102030405060708090a0b0c0d0e0f","salt":"{SALT}"}}"#
    ))
    .unwrap();
    let mut receiver = VideoReceiver::start(receiver_config, None).unwrap();
    let config = PipelineConfig::from_json(&format!(
        r#"{{"width":320,"height":240,"fps":60,"encoder":"software","bitrate_kbps":1000,"key":"{KEY}","salt":"{SALT}",
            "destination":"{}","max_frames":10}}"#,
        receiver.local_addr()
    ))
    .unwrap();
    let mut sender = VideoSender::start(config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sender.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_in_flight_datagrams(&sender, &receiver);
    sender.stop();
    receiver.stop();
    receiver.with_state(|state| {
        assert!(state.counters.auth_failures > 0);
        assert_eq!(state.counters.frames_complete, 0);
    });
}
