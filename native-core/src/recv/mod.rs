//! Ingress socket edge: batched UDP receive (recvmmsg).
pub mod udp;
