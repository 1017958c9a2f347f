//! The punktfunk/1 data-plane packet format ([`pf1`]) and the sender-side
//! frame → packets splitter ([`packetize`]).

pub mod packetize;
pub mod pf1;
