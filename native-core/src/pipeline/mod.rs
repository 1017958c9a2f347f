//! Sessions: source → encoder → packetizer (FEC) → sealer → paced sender, on native threads,
//! configured once from JSON and observed through stats snapshots and a polled event queue.
pub mod client_ping;
pub mod config;
pub mod events;
pub mod gamestream_audio_sender;
pub mod gamestream_receivers;
pub mod stats;
pub mod video_receiver;
pub mod video_sender;
pub mod worker;
