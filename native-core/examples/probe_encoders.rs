//! Prints the encoder probe report for a size, plus the native log records
//! it produced: `cargo run --release --example probe_encoders -- 1280 720`.

use punktfunk_native::{encode::probe, log};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut next = |default: u32| args.next().and_then(|a| a.parse().ok()).unwrap_or(default);
    let (width, height) = (next(1280), next(720));

    match probe::probe_encoders_json(width, height) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("probe failed: {e}");
            std::process::exit(1);
        }
    }

    let mut buf = vec![0u8; log::MAX_RECORD_BYTES];
    while let Ok(n) = log::drain(&mut buf) {
        if n == 0 {
            break;
        }
        eprint!("{}", String::from_utf8_lossy(&buf[..n]));
    }
}
