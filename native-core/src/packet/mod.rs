//! The punktfunk/1 data-plane packet format ([`pf1`]) and the sender-side
//! frame → packets splitter ([`packetize`]), plus the GameStream
//! (Moonlight-compatible) video and audio packet formats
//! ([`gamestream_video`], [`gamestream_audio`]).

pub mod gamestream_audio;
pub mod gamestream_video;
pub mod packetize;
pub mod pf1;
