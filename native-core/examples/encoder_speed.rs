//! Measures the encoder a session would get for a mode:
//! `cargo run --release --example encoder_speed -- hevc:1280x720@60 [more modes]`.

fn main() {
    for spec in std::env::args().skip(1) {
        match punktfunk_native::encode::speed::measure_json(&spec) {
            Ok(json) => println!("{json}"),
            Err(e) => println!("{spec}: {e}"),
        }
    }
}
