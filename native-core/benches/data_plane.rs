//! Rough per-packet costs of the data plane (no FEC: the real codes live
//! elsewhere). Run: `cargo run --release --example data_plane_bench`.

use std::hint::black_box;
use std::time::Instant;

use punktfunk_native::crypto::aes_gcm::{Direction, MediaOpener, MediaSealer};
use punktfunk_native::fec::{CodeProvider, ErasureCode, FecError, FecScheme};
use punktfunk_native::packet::packetize::{FrameInput, Packetizer, PacketizerConfig};
use punktfunk_native::packet::pf1::DEFAULT_SHARD_BYTES;
use punktfunk_native::recv::reassembly::{Reassembler, ReassemblyConfig};
use punktfunk_native::recv::replay::ReplayFilter;

/// FEC is off in this bench, so no coder is ever requested.
struct NoCodes;

impl CodeProvider for NoCodes {
    fn code(&mut self, _: FecScheme, _: usize, _: usize) -> Result<&mut dyn ErasureCode, FecError> {
        Err(FecError::InvalidParameters("FEC disabled in bench".into()))
    }
}

fn report(what: &str, packets: u64, start: Instant) {
    let ns = start.elapsed().as_nanos() as f64 / packets as f64;
    let gbit = (DEFAULT_SHARD_BYTES as f64 * 8.0) / ns;
    println!("{what:<32} {ns:8.1} ns/packet  ({gbit:5.1} Gbit/s of shard payload)");
}

fn main() {
    const PACKETS: u64 = 1_000_000;
    let key = *b"0123456789abcdef";
    let salt = [1, 2, 3, 4];
    let mut sealer = MediaSealer::new(&key, salt, Direction::HostToClient).unwrap();
    let mut opener = MediaOpener::new(&key, salt, Direction::HostToClient).unwrap();
    // 1472-byte datagram: 8 seq + 40 header + 1408 shard + 16 tag.
    let mut datagram = vec![0x5au8; DEFAULT_SHARD_BYTES + 64];

    let start = Instant::now();
    for seq in 0..PACKETS {
        sealer.seal_datagram(seq, black_box(&mut datagram)).unwrap();
    }
    report("seal_datagram (1472 B)", PACKETS, start);

    let mut sealed: Vec<Vec<u8>> = Vec::new();
    let mut sealer = MediaSealer::new(&key, salt, Direction::HostToClient).unwrap();
    for seq in 0..1024u64 {
        let mut d = vec![0x5au8; DEFAULT_SHARD_BYTES + 64];
        sealer.seal_datagram(seq, &mut d).unwrap();
        sealed.push(d);
    }
    let mut scratch = vec![0u8; DEFAULT_SHARD_BYTES + 64];
    let start = Instant::now();
    for i in 0..PACKETS {
        scratch.copy_from_slice(&sealed[(i % 1024) as usize]);
        black_box(opener.open_datagram(&mut scratch).unwrap());
    }
    report("open_datagram (+copy, 1472 B)", PACKETS, start);

    let mut replay = ReplayFilter::new();
    let start = Instant::now();
    for seq in 0..PACKETS {
        black_box(replay.check_and_insert(black_box(seq)));
    }
    report("replay check_and_insert", PACKETS, start);

    // 100 kB frames, FEC off: packetize + reassemble.
    let frame = vec![0x33u8; 100_000];
    let mut packetizer = Packetizer::new(PacketizerConfig::new(FecScheme::None, 0)).unwrap();
    let mut reassembler = Reassembler::new(ReassemblyConfig::default()).unwrap();
    let frames = 20_000u32;
    let mut packets = 0u64;
    let mut packetize_ns = 0u128;
    let mut reassemble_ns = 0u128;
    for index in 0..frames {
        let input = FrameInput {
            data: &frame,
            frame_index: index,
            pts_ns: 0,
            user_flags: 0,
        };
        let t = Instant::now();
        let batch = packetizer.packetize(&input, &mut NoCodes).unwrap();
        packetize_ns += t.elapsed().as_nanos();
        let t = Instant::now();
        for i in 0..batch.len() {
            reassembler.push(0, batch.plaintext(i), &mut NoCodes);
        }
        while let Some(done) = reassembler.pop_frame() {
            reassembler.recycle(done.data);
        }
        reassemble_ns += t.elapsed().as_nanos();
        packets += batch.len() as u64;
    }
    assert_eq!(reassembler.stats().frames_complete, u64::from(frames));
    println!(
        "{:<32} {:8.1} ns/packet",
        "packetize (FEC off)",
        packetize_ns as f64 / packets as f64
    );
    println!(
        "{:<32} {:8.1} ns/packet",
        "reassembler push (FEC off)",
        reassemble_ns as f64 / packets as f64
    );
}
