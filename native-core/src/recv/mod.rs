//! Ingress: batched UDP receive (recvmmsg), replay protection after the AEAD open, and frame
//! reassembly with FEC recovery.
pub mod reassembly;
pub mod replay;
pub mod udp;
