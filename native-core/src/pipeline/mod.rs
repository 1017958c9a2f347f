//! Sessions: source → encoder → packetizer (FEC) → sealer → paced sender, on native threads,
//! configured once from JSON and observed through stats snapshots and a polled event queue.
pub mod config;
pub mod events;
pub mod stats;
pub mod video_receiver;
pub mod video_sender;
