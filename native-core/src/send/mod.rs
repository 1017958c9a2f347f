//! Egress: pacing, loss/rate impairment for tests, and batched UDP sends (sendmmsg, UDP GSO).
pub mod impairment;
pub mod pacer;
pub mod udp;
