//! punktfunk-native: the Rust media core of punktfunk.
//!
//! Built as a `cdylib` that the TypeScript/Deno control plane loads with
//! `Deno.dlopen`; the C ABI it exposes lives entirely in [`abi`]. The `rlib`
//! build exists so tests and benchmarks can call the Rust-level APIs directly.

pub mod abi;
pub mod abi_capture;
pub mod abi_input;
pub mod abi_media;
pub mod abi_session;
pub mod audio;
pub mod bench;
pub mod capture;
pub mod crypto;
pub mod encode;
pub mod error;
pub mod fec;
pub mod inject;
pub mod json;
pub mod last_error;
pub mod log;
pub mod packet;
pub mod pipeline;
pub mod recv;
pub mod send;
pub mod stats;
pub mod status;

/// Version of the C ABI exported by [`abi`]; bumped on any incompatible change.
pub const ABI_VERSION: u32 = 1;

#[cfg(test)]
mod data_plane_tests;
