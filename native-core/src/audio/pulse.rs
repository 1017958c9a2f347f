//! Desktop audio capture from PulseAudio or PipeWire (through its
//! pulse-compatible server) with libpulse-simple, plus a playback stream for
//! our own client and for tests.
//!
//! Capture records a sink's *monitor* source, i.e. exactly what the desktop
//! plays. By default it opens [`DEFAULT_MONITOR_DEVICE`] (`@DEFAULT_MONITOR@`),
//! a name both PulseAudio and PipeWire-pulse resolve to the monitor of the
//! current default sink, so the simple API suffices (finding the sink name
//! itself would need the asynchronous API). Samples are signed 16-bit in
//! native byte order (S16LE on every platform we ship), 48 kHz, 2/6/8
//! channels in GameStream order FL FR C LFE BL BR SL SR; the server up- or
//! down-mixes if the sink has a different layout.
//!
//! Every libpulse failure becomes [`AudioError::Unavailable`] carrying the
//! operation and `pa_strerror` text, e.g. "Connection refused" when no
//! server runs.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::NonNull;

use super::{
    monotonic_ns, samples_to_ns, AudioError, AudioFrame, AudioSource, ChannelLayout, SAMPLE_RATE_HZ,
};

/// Special source name for the monitor of the default sink.
pub const DEFAULT_MONITOR_DEVICE: &str = "@DEFAULT_MONITOR@";

/// Default capture fragment / playback target latency: 10 ms, two 5 ms
/// GameStream packets — enough slack for scheduling jitter while adding
/// little latency.
pub const DEFAULT_BUFFER_MS: u32 = 10;

/// Largest accepted buffer: one second; more only adds latency.
const MAX_BUFFER_MS: u32 = 1000;

/// Client name the server shows (e.g. in pavucontrol).
const APPLICATION_NAME: &CStr = c"punktfunk";

// Values from <pulse/def.h>, <pulse/sample.h>, <pulse/channelmap.h>; each is
// checked against the headers by a static assertion in csrc/audio_glue.c.
const PA_STREAM_PLAYBACK: c_int = 1;
const PA_STREAM_RECORD: c_int = 2;
#[cfg(target_endian = "little")]
const PA_SAMPLE_S16NE: c_int = 3; // PA_SAMPLE_S16LE
#[cfg(target_endian = "big")]
const PA_SAMPLE_S16NE: c_int = 4; // PA_SAMPLE_S16BE
const PA_CHANNELS_MAX: usize = 32;
const PA_CHANNEL_POSITION_FRONT_LEFT: c_int = 1;
const PA_CHANNEL_POSITION_FRONT_RIGHT: c_int = 2;
const PA_CHANNEL_POSITION_FRONT_CENTER: c_int = 3;
const PA_CHANNEL_POSITION_REAR_LEFT: c_int = 5;
const PA_CHANNEL_POSITION_REAR_RIGHT: c_int = 6;
const PA_CHANNEL_POSITION_LFE: c_int = 7;
const PA_CHANNEL_POSITION_SIDE_LEFT: c_int = 10;
const PA_CHANNEL_POSITION_SIDE_RIGHT: c_int = 11;
/// `(uint32_t) -1` in a `pa_buffer_attr` field: "server default".
const PA_BUFFER_DEFAULT: u32 = u32::MAX;
/// `pa_simple_get_latency`'s failure value, `(pa_usec_t) -1`.
const PA_USEC_INVALID: u64 = u64::MAX;

/// GameStream channel order as PulseAudio positions (BL/BR are PulseAudio's
/// rear channels).
const GAMESTREAM_CHANNEL_POSITIONS: [c_int; 8] = [
    PA_CHANNEL_POSITION_FRONT_LEFT,
    PA_CHANNEL_POSITION_FRONT_RIGHT,
    PA_CHANNEL_POSITION_FRONT_CENTER,
    PA_CHANNEL_POSITION_LFE,
    PA_CHANNEL_POSITION_REAR_LEFT,
    PA_CHANNEL_POSITION_REAR_RIGHT,
    PA_CHANNEL_POSITION_SIDE_LEFT,
    PA_CHANNEL_POSITION_SIDE_RIGHT,
];

#[repr(C)]
struct PaSampleSpec {
    format: c_int,
    rate: u32,
    channels: u8,
}

#[repr(C)]
struct PaChannelMap {
    channels: u8,
    map: [c_int; PA_CHANNELS_MAX],
}

#[repr(C)]
struct PaBufferAttr {
    maxlength: u32,
    tlength: u32,
    prebuf: u32,
    minreq: u32,
    fragsize: u32,
}

#[repr(C)]
struct RawPaSimple {
    _opaque: [u8; 0],
}

extern "C" {
    fn pa_simple_new(
        server: *const c_char,
        name: *const c_char,
        direction: c_int,
        device: *const c_char,
        stream_name: *const c_char,
        sample_spec: *const PaSampleSpec,
        channel_map: *const PaChannelMap,
        buffer_attr: *const PaBufferAttr,
        error: *mut c_int,
    ) -> *mut RawPaSimple;
    fn pa_simple_free(stream: *mut RawPaSimple);
    fn pa_simple_read(
        stream: *mut RawPaSimple,
        data: *mut c_void,
        bytes: usize,
        error: *mut c_int,
    ) -> c_int;
    fn pa_simple_write(
        stream: *mut RawPaSimple,
        data: *const c_void,
        bytes: usize,
        error: *mut c_int,
    ) -> c_int;
    fn pa_simple_drain(stream: *mut RawPaSimple, error: *mut c_int) -> c_int;
    fn pa_simple_get_latency(stream: *mut RawPaSimple, error: *mut c_int) -> u64;
    fn pa_strerror(error: c_int) -> *const c_char;
}

/// `AudioError::Unavailable` with the operation and `pa_strerror` text.
fn pulse_error(operation: &str, code: c_int) -> AudioError {
    // SAFETY: pa_strerror accepts any int and returns NULL or a pointer to a
    // static NUL-terminated string.
    let text = unsafe { pa_strerror(code) };
    let reason = if text.is_null() {
        format!("error {code}")
    } else {
        // SAFETY: non-NULL, static and NUL-terminated (see above).
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    };
    AudioError::Unavailable(format!("{operation}: {reason}"))
}

fn c_string(what: &str, value: &str) -> Result<CString, AudioError> {
    CString::new(value)
        .map_err(|_| AudioError::InvalidArgument(format!("{what} {value:?} contains a NUL byte")))
}

/// Where and how to open a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulseOptions {
    /// Server address such as `unix:/run/user/1000/pulse/native`; `None`
    /// uses libpulse's default (`$PULSE_SERVER`, then the per-user socket).
    pub server: Option<String>,
    /// Source (capture) or sink (playback) name; `None` uses
    /// [`DEFAULT_MONITOR_DEVICE`] for capture and the default sink for
    /// playback.
    pub device: Option<String>,
    /// Channel layout of the samples exchanged with the server.
    pub layout: ChannelLayout,
    /// Capture fragment size or playback target latency, in ms
    /// (1..=1000).
    pub buffer_ms: u32,
}

impl PulseOptions {
    /// Default server and device, [`DEFAULT_BUFFER_MS`].
    pub fn new(layout: ChannelLayout) -> PulseOptions {
        PulseOptions {
            server: None,
            device: None,
            layout,
            buffer_ms: DEFAULT_BUFFER_MS,
        }
    }

    fn buffer_bytes(&self) -> Result<u32, AudioError> {
        if !(1..=MAX_BUFFER_MS).contains(&self.buffer_ms) {
            return Err(AudioError::InvalidArgument(format!(
                "buffer_ms must be 1..={MAX_BUFFER_MS}, got {}",
                self.buffer_ms
            )));
        }
        let bytes_per_instant = u32::from(self.layout.channel_count()) * 2;
        Ok(SAMPLE_RATE_HZ / 1000 * self.buffer_ms * bytes_per_instant)
    }
}

/// An open libpulse-simple stream; frees it on drop.
struct SimpleStream {
    raw: NonNull<RawPaSimple>,
}

// SAFETY: a pa_simple object runs its own threaded main loop and locks it in
// every call, so it has no affinity to the creating thread; `SimpleStream`
// owns it exclusively and calls into it only through `&mut self`.
unsafe impl Send for SimpleStream {}

impl SimpleStream {
    fn open(
        options: &PulseOptions,
        direction: c_int,
        default_device: Option<&str>,
        stream_name: &CStr,
        buffer_attr: &PaBufferAttr,
    ) -> Result<SimpleStream, AudioError> {
        let server = options
            .server
            .as_deref()
            .map(|s| c_string("server", s))
            .transpose()?;
        let device_name = options.device.as_deref().or(default_device);
        let device = device_name.map(|d| c_string("device", d)).transpose()?;
        let channels = options.layout.channel_count();
        let sample_spec = PaSampleSpec {
            format: PA_SAMPLE_S16NE,
            rate: SAMPLE_RATE_HZ,
            channels,
        };
        let mut channel_map = PaChannelMap {
            channels,
            map: [0; PA_CHANNELS_MAX],
        };
        let used = usize::from(channels);
        channel_map.map[..used].copy_from_slice(&GAMESTREAM_CHANNEL_POSITIONS[..used]);

        let mut error: c_int = 0;
        // SAFETY: every pointer is NULL where libpulse allows it (server,
        // device) or points to a live, NUL-terminated string / initialised
        // struct with the C layout (checked in csrc/audio_glue.c) that
        // outlives the call; `error` is a valid out-pointer. The result is
        // NULL or a stream we now own.
        let raw = unsafe {
            pa_simple_new(
                server.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                APPLICATION_NAME.as_ptr(),
                direction,
                device.as_ref().map_or(std::ptr::null(), |d| d.as_ptr()),
                stream_name.as_ptr(),
                &sample_spec,
                &channel_map,
                buffer_attr,
                &mut error,
            )
        };
        let kind = if direction == PA_STREAM_RECORD {
            "record"
        } else {
            "playback"
        };
        NonNull::new(raw)
            .map(|raw| SimpleStream { raw })
            .ok_or_else(|| {
                pulse_error(
                    &format!(
                        "pa_simple_new({kind}, server {}, device {})",
                        options.server.as_deref().unwrap_or("<default>"),
                        device_name.unwrap_or("<default>")
                    ),
                    error,
                )
            })
    }

    /// Fills `samples` completely, blocking until enough data arrived.
    fn read(&mut self, samples: &mut [i16]) -> Result<(), AudioError> {
        let mut error: c_int = 0;
        // SAFETY: live stream owned by `self`; `samples` is writable for
        // exactly size_of_val(samples) bytes, and any byte pattern is a
        // valid i16.
        let rc = unsafe {
            pa_simple_read(
                self.raw.as_ptr(),
                samples.as_mut_ptr().cast(),
                std::mem::size_of_val(samples),
                &mut error,
            )
        };
        if rc < 0 {
            Err(pulse_error("pa_simple_read", error))
        } else {
            Ok(())
        }
    }

    fn write(&mut self, samples: &[i16]) -> Result<(), AudioError> {
        let mut error: c_int = 0;
        // SAFETY: live stream owned by `self`; `samples` is readable for
        // size_of_val(samples) bytes; libpulse copies the data.
        let rc = unsafe {
            pa_simple_write(
                self.raw.as_ptr(),
                samples.as_ptr().cast(),
                std::mem::size_of_val(samples),
                &mut error,
            )
        };
        if rc < 0 {
            Err(pulse_error("pa_simple_write", error))
        } else {
            Ok(())
        }
    }

    fn drain(&mut self) -> Result<(), AudioError> {
        let mut error: c_int = 0;
        // SAFETY: live stream owned by `self`; `error` is a valid out-pointer.
        let rc = unsafe { pa_simple_drain(self.raw.as_ptr(), &mut error) };
        if rc < 0 {
            Err(pulse_error("pa_simple_drain", error))
        } else {
            Ok(())
        }
    }

    /// Audio buffered between the device and us, in µs, if known.
    fn latency_us(&mut self) -> Result<u64, AudioError> {
        let mut error: c_int = 0;
        // SAFETY: live stream owned by `self`; `error` is a valid out-pointer.
        let latency = unsafe { pa_simple_get_latency(self.raw.as_ptr(), &mut error) };
        if latency == PA_USEC_INVALID {
            Err(pulse_error("pa_simple_get_latency", error))
        } else {
            Ok(latency)
        }
    }
}

impl Drop for SimpleStream {
    fn drop(&mut self) {
        // SAFETY: `raw` came from pa_simple_new, is owned solely by `self` and
        // is not used after this.
        unsafe { pa_simple_free(self.raw.as_ptr()) };
    }
}

/// Monitor (or any source) capture implementing [`AudioSource`].
pub struct PulseSource {
    stream: SimpleStream,
    layout: ChannelLayout,
}

impl std::fmt::Debug for PulseSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulseSource")
            .field("layout", &self.layout)
            .finish()
    }
}

impl PulseSource {
    /// Connects and starts recording. Fails with
    /// [`AudioError::Unavailable`] when the server or device cannot be used.
    pub fn open(options: &PulseOptions) -> Result<PulseSource, AudioError> {
        let buffer_attr = PaBufferAttr {
            maxlength: PA_BUFFER_DEFAULT,
            tlength: PA_BUFFER_DEFAULT,
            prebuf: PA_BUFFER_DEFAULT,
            minreq: PA_BUFFER_DEFAULT,
            fragsize: options.buffer_bytes()?,
        };
        let stream = SimpleStream::open(
            options,
            PA_STREAM_RECORD,
            Some(DEFAULT_MONITOR_DEVICE),
            c"desktop capture",
            &buffer_attr,
        )?;
        Ok(PulseSource {
            stream,
            layout: options.layout,
        })
    }

    /// Recorded audio not yet read, in µs (libpulse's estimate).
    pub fn latency_us(&mut self) -> Result<u64, AudioError> {
        self.stream.latency_us()
    }
}

impl AudioSource for PulseSource {
    fn layout(&self) -> ChannelLayout {
        self.layout
    }

    /// Blocks until `samples_per_channel` instants were recorded.
    /// `capture_ns` estimates the first sample's capture time: the time the
    /// read returned, minus the audio still buffered behind it, minus the
    /// block's own duration.
    fn read(
        &mut self,
        frame: &mut AudioFrame,
        samples_per_channel: usize,
    ) -> Result<(), AudioError> {
        frame.prepare(self.layout, samples_per_channel)?;
        self.stream.read(&mut frame.samples)?;
        let returned_ns = monotonic_ns();
        // A failed estimate only costs timestamp accuracy: treat as 0.
        let buffered_ns = self.stream.latency_us().unwrap_or(0).saturating_mul(1000);
        frame.capture_ns = returned_ns
            .saturating_sub(buffered_ns)
            .saturating_sub(samples_to_ns(samples_per_channel as u64));
        Ok(())
    }

    fn name(&self) -> &'static str {
        "pulse"
    }
}

/// A playback stream (our own client's output; tests feed null sinks).
pub struct PulseSink {
    stream: SimpleStream,
    layout: ChannelLayout,
}

impl std::fmt::Debug for PulseSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulseSink")
            .field("layout", &self.layout)
            .finish()
    }
}

impl PulseSink {
    /// Connects and opens a playback stream with `buffer_ms` target latency.
    pub fn open(options: &PulseOptions) -> Result<PulseSink, AudioError> {
        let buffer_attr = PaBufferAttr {
            maxlength: PA_BUFFER_DEFAULT,
            tlength: options.buffer_bytes()?,
            prebuf: PA_BUFFER_DEFAULT,
            minreq: PA_BUFFER_DEFAULT,
            fragsize: PA_BUFFER_DEFAULT,
        };
        let stream =
            SimpleStream::open(options, PA_STREAM_PLAYBACK, None, c"playback", &buffer_attr)?;
        Ok(PulseSink {
            stream,
            layout: options.layout,
        })
    }

    /// The layout samples must have.
    pub fn layout(&self) -> ChannelLayout {
        self.layout
    }

    /// Queues interleaved samples (whole instants), blocking while the
    /// server's buffer is full.
    pub fn write(&mut self, samples: &[i16]) -> Result<(), AudioError> {
        let channels = usize::from(self.layout.channel_count());
        if !samples.len().is_multiple_of(channels) {
            return Err(AudioError::InvalidArgument(format!(
                "{} samples is not a whole number of {channels}-channel instants",
                samples.len()
            )));
        }
        if samples.is_empty() {
            return Ok(());
        }
        self.stream.write(samples)
    }

    /// Blocks until everything written has been played.
    pub fn drain(&mut self) -> Result<(), AudioError> {
        self.stream.drain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_signal::{channel, dominant_frequency, rms};
    use crate::audio::tone::{Pacing, ToneSource};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::{mpsc, Arc};
    use std::time::{Duration, Instant};

    #[test]
    fn unreachable_server_is_unavailable_with_reason() {
        let options = PulseOptions {
            server: Some("unix:/nonexistent-punktfunk-test/native".into()),
            ..PulseOptions::new(ChannelLayout::Stereo)
        };
        match PulseSource::open(&options) {
            Err(AudioError::Unavailable(reason)) => {
                assert!(
                    reason.starts_with("pa_simple_new(record, server unix:/nonexistent"),
                    "{reason}"
                );
                // The pa_strerror text follows the colon.
                let text = reason.rsplit(": ").next().unwrap();
                assert!(!text.is_empty() && !text.starts_with("error "), "{reason}");
                println!("unreachable server reported: {reason}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(matches!(
            PulseSink::open(&options),
            Err(AudioError::Unavailable(_))
        ));
    }

    #[test]
    fn invalid_options_are_rejected_before_connecting() {
        let nul_device = PulseOptions {
            device: Some("bad\0name".into()),
            ..PulseOptions::new(ChannelLayout::Stereo)
        };
        assert!(matches!(
            PulseSource::open(&nul_device),
            Err(AudioError::InvalidArgument(_))
        ));
        for buffer_ms in [0, MAX_BUFFER_MS + 1] {
            let options = PulseOptions {
                buffer_ms,
                ..PulseOptions::new(ChannelLayout::Surround71)
            };
            assert!(matches!(
                PulseSource::open(&options),
                Err(AudioError::InvalidArgument(_))
            ));
            assert!(matches!(
                PulseSink::open(&options),
                Err(AudioError::InvalidArgument(_))
            ));
        }
    }

    #[test]
    fn buffer_sizes_follow_layout_and_duration() {
        let options = PulseOptions::new(ChannelLayout::Surround51);
        // 10 ms × 48 samples/ms × 6 channels × 2 bytes.
        assert_eq!(options.buffer_bytes().unwrap(), 5_760);
    }

    #[test]
    fn channel_positions_are_gamestream_order() {
        // FL FR C LFE RL RR SL SR.
        assert_eq!(GAMESTREAM_CHANNEL_POSITIONS, [1, 2, 3, 7, 5, 6, 10, 11]);
    }

    #[test]
    fn source_and_sink_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<PulseSource>();
        assert_send::<PulseSink>();
    }

    /// A private daemon started for a test that needs one. Such tests are
    /// `#[ignore = "needs pulseaudio …"]` and named `needs_pulseaudio_…`:
    /// plain `cargo test` reports them as ignored (skipped), and
    /// `packaging/bootstrap.sh` runs them with `--ignored needs_pulseaudio_`
    /// when `pulseaudio` and `pacat` are installed. Once asked for, a
    /// daemon that does not start fails the test.
    fn require_server() -> TestServer {
        TestServer::start().unwrap_or_else(|reason| panic!("{reason}"))
    }

    /// The default source (the first null sink's monitor) of a private
    /// daemon delivers timestamped blocks of the requested size.
    #[test]
    #[ignore = "needs pulseaudio (bootstrap.sh runs it when installed)"]
    fn needs_pulseaudio_default_source_delivers_timestamped_blocks() {
        let server = require_server();
        let options = PulseOptions {
            server: Some(server.address()),
            ..PulseOptions::new(ChannelLayout::Stereo)
        };
        let mut source = PulseSource::open(&options).unwrap();
        let mut frame = AudioFrame::new();
        source.read(&mut frame, 480).unwrap();
        assert_eq!(frame.samples.len(), 960);
        let first_ns = frame.capture_ns;
        assert!(first_ns <= monotonic_ns());
        source.read(&mut frame, 480).unwrap();
        assert!(frame.capture_ns > first_ns, "capture times advance");
    }

    /// A private `pulseaudio` daemon with one null sink per layout, listening
    /// on a socket in its own temporary directory; killed on drop.
    struct TestServer {
        child: Child,
        directory: PathBuf,
    }

    /// (layout, null sink name, PulseAudio channel map).
    const TEST_SINKS: [(ChannelLayout, &str, &str); 3] = [
        (
            ChannelLayout::Stereo,
            "pf_test_stereo",
            "front-left,front-right",
        ),
        (
            ChannelLayout::Surround51,
            "pf_test_51",
            "front-left,front-right,front-center,lfe,rear-left,rear-right",
        ),
        (
            ChannelLayout::Surround71,
            "pf_test_71",
            "front-left,front-right,front-center,lfe,rear-left,rear-right,side-left,side-right",
        ),
    ];

    impl TestServer {
        /// Starts the daemon and waits until it accepts connections; `Err`
        /// carries the reason to skip.
        fn start() -> Result<TestServer, String> {
            // One directory per daemon: tests run in parallel threads.
            static NEXT_SERVER: AtomicU32 = AtomicU32::new(0);
            let directory = std::env::temp_dir().join(format!(
                "pf-audio-pulse-{}-{}",
                std::process::id(),
                NEXT_SERVER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&directory).map_err(|e| format!("temp dir: {e}"))?;
            let socket = directory.join("native");
            let log = std::fs::File::create(directory.join("pulseaudio.log"))
                .map_err(|e| format!("log file: {e}"))?;
            let mut command = Command::new("pulseaudio");
            command
                .args([
                    "-n", // no default.pa: only the modules below
                    "--daemonize=no",
                    "--system=false",
                    "--exit-idle-time=-1",
                    "--use-pid-file=false",
                    "--realtime=false",
                    "--high-priority=false",
                    "--log-target=stderr",
                    "-L",
                ])
                .arg(format!(
                    "module-native-protocol-unix socket={} auth-anonymous=1",
                    socket.display()
                ));
            // The first sink loaded becomes the default sink.
            for (layout, name, map) in TEST_SINKS {
                command.arg("-L").arg(format!(
                    "module-null-sink sink_name={name} format=s16le rate={SAMPLE_RATE_HZ} channels={} channel_map={map}",
                    layout.channel_count()
                ));
            }
            // Keep the daemon's state (cookie, runtime dir) inside `directory`.
            command
                .env("HOME", &directory)
                .env("XDG_RUNTIME_DIR", &directory)
                .env("XDG_CONFIG_HOME", &directory)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            let child = match command.spawn() {
                Ok(child) => child,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&directory);
                    return Err(format!("cannot run pulseaudio: {e}"));
                }
            };
            let mut server = TestServer { child, directory };
            // Startup takes ~0.2 s; 10 s tolerates a loaded CI machine.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let probe = PulseOptions {
                    server: Some(server.address()),
                    ..PulseOptions::new(ChannelLayout::Stereo)
                };
                match PulseSink::open(&probe) {
                    Ok(_) => return Ok(server),
                    Err(error) => {
                        if let Ok(Some(status)) = server.child.try_wait() {
                            let log =
                                std::fs::read_to_string(server.directory.join("pulseaudio.log"))
                                    .unwrap_or_default();
                            return Err(format!("pulseaudio exited ({status}): {}", log.trim()));
                        }
                        if Instant::now() > deadline {
                            return Err(format!("pulseaudio did not accept connections: {error}"));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        fn address(&self) -> String {
            format!("unix:{}", self.directory.join("native").display())
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            // Only the daemon this test started, by its own handle.
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.directory);
        }
    }

    /// How the test tone gets into the null sink.
    #[derive(Clone, Copy)]
    enum Player {
        /// Through [`PulseSink`] (same channel positions as the capture).
        OurSink,
        /// Through PulseAudio's `pacat` with the channel map given as text,
        /// an independent reference for our channel positions.
        Pacat(&'static str),
    }

    /// Plays the tone into `sink` while capturing `monitor` for 1.5 s and
    /// returns the last 0.5 s of the capture.
    fn play_and_capture(
        server: &str,
        layout: ChannelLayout,
        sink: &str,
        monitor: Option<&str>,
        player: Player,
    ) -> Vec<i16> {
        let stop = Arc::new(AtomicBool::new(false));
        let playing = {
            let stop = Arc::clone(&stop);
            let (server, sink) = (server.to_string(), sink.to_string());
            std::thread::spawn(move || play_tone(&server, layout, &sink, player, &stop))
        };
        let capture_options = PulseOptions {
            server: Some(server.to_string()),
            device: monitor.map(str::to_string),
            ..PulseOptions::new(layout)
        };
        let captured = (|| -> Result<Vec<i16>, AudioError> {
            let mut source = PulseSource::open(&capture_options)?;
            let mut frame = AudioFrame::new();
            let mut all = Vec::new();
            // 15 reads of 100 ms.
            for _ in 0..15 {
                source.read(&mut frame, 4_800)?;
                assert_eq!(frame.channels, layout.channel_count());
                all.extend_from_slice(&frame.samples);
            }
            Ok(all)
        })();
        stop.store(true, Ordering::Relaxed);
        playing
            .join()
            .expect("player thread panicked")
            .expect("playback failed");
        let captured = captured.expect("capture failed");
        let half_second = 24_000 * usize::from(layout.channel_count());
        captured[captured.len() - half_second..].to_vec()
    }

    /// Writes the tone (10 ms blocks) until `stop`; the server paces the
    /// writes, each blocking while its buffer is full.
    fn play_tone(
        server: &str,
        layout: ChannelLayout,
        sink: &str,
        player: Player,
        stop: &AtomicBool,
    ) -> Result<(), String> {
        let mut tone = ToneSource::new(layout, Pacing::Unpaced);
        let mut frame = AudioFrame::new();
        match player {
            Player::OurSink => {
                let options = PulseOptions {
                    server: Some(server.to_string()),
                    device: Some(sink.to_string()),
                    layout,
                    buffer_ms: 20,
                };
                let mut sink = PulseSink::open(&options).map_err(|e| e.to_string())?;
                while !stop.load(Ordering::Relaxed) {
                    tone.read(&mut frame, 480).map_err(|e| e.to_string())?;
                    sink.write(&frame.samples).map_err(|e| e.to_string())?;
                }
                sink.drain().map_err(|e| e.to_string())
            }
            Player::Pacat(channel_map) => {
                use std::io::Write;
                let mut child = Command::new("pacat")
                    .arg("--playback")
                    .arg("--raw")
                    .arg(format!("--server={server}"))
                    .arg(format!("--device={sink}"))
                    .arg("--format=s16le")
                    .arg(format!("--rate={SAMPLE_RATE_HZ}"))
                    .arg(format!("--channels={}", layout.channel_count()))
                    .arg(format!("--channel-map={channel_map}"))
                    .arg("--latency-msec=20")
                    .stdin(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("pacat: {e}"))?;
                let mut stdin = child.stdin.take().expect("piped stdin");
                let mut bytes = Vec::new();
                let mut result = Ok(());
                while result.is_ok() && !stop.load(Ordering::Relaxed) {
                    tone.read(&mut frame, 480).map_err(|e| e.to_string())?;
                    bytes.clear();
                    bytes.extend(frame.samples.iter().flat_map(|s| s.to_le_bytes()));
                    result = stdin
                        .write_all(&bytes)
                        .map_err(|e| format!("pacat stdin: {e}"));
                }
                drop(stdin);
                // Only the pacat this test started, by its own handle.
                let _ = child.kill();
                let _ = child.wait();
                result
            }
        }
    }

    #[test]
    #[ignore = "needs pulseaudio and pacat (bootstrap.sh runs it when installed)"]
    fn needs_pulseaudio_monitor_capture_of_null_sink_returns_the_played_tone() {
        let server = require_server();
        let address = server.address();
        // Run the checks on a thread so a hung read fails the test instead
        // of hanging it (dropping `server` then kills the daemon, which also
        // unblocks the thread).
        let (done, result) = mpsc::channel();
        // pacat is the independent reference for our channel positions; a
        // run that asked for this test without it is a failure, not a pass.
        let pacat = Command::new("pacat").arg("--version").output();
        assert!(
            pacat.is_ok_and(|output| output.status.success()),
            "pacat (pulseaudio-utils) is not installed"
        );
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| {
                for (index, (layout, sink, channel_map)) in TEST_SINKS.into_iter().enumerate() {
                    // Stereo goes through @DEFAULT_MONITOR@ (its sink is the
                    // default), the others through explicit monitor names.
                    let monitor_name = format!("{sink}.monitor");
                    let monitor = (index > 0).then_some(monitor_name.as_str());
                    let captured =
                        play_and_capture(&address, layout, sink, monitor, Player::OurSink);
                    check_tone(&captured, layout);
                    let player = Player::Pacat(channel_map);
                    let captured = play_and_capture(&address, layout, sink, monitor, player);
                    check_tone(&captured, layout);
                }
            });
            let _ = done.send(outcome);
        });
        // Six rounds of 2.5–3.5 s each (the null sink's first render block
        // is long); 120 s is ample even on a loaded machine.
        match result.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(())) => {}
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => panic!("pulse capture test timed out"),
        }
    }

    fn median_window_rms(signal: &[f64]) -> f64 {
        let window = SAMPLE_RATE_HZ as usize / 100;
        let mut levels: Vec<f64> = signal.chunks_exact(window).map(rms).collect();
        if levels.is_empty() {
            return rms(signal);
        }
        levels.sort_by(f64::total_cmp);
        levels[levels.len() / 2]
    }

    fn check_tone(captured: &[i16], layout: ChannelLayout) {
        let channels = usize::from(layout.channel_count());
        let candidates: Vec<f64> = (0..channels)
            .map(|c| f64::from(ToneSource::frequency_hz(c)))
            .collect();
        let expected_rms =
            ToneSource::new(layout, Pacing::Unpaced).peak_amplitude() / std::f64::consts::SQRT_2;
        for ch in 0..channels {
            let signal = channel(captured, channels, ch);
            let (dominant, margin_db) =
                dominant_frequency(&signal, &candidates, f64::from(SAMPLE_RATE_HZ));
            assert_eq!(dominant, candidates[ch], "{layout:?} channel {ch}");
            assert!(
                margin_db > 20.0,
                "{layout:?} channel {ch}: margin {margin_db:.1} dB"
            );
            // Unity volumes: the level survives within ±1 dB. Measured as the median of 10 ms
            // windows, so an underrun gap on a loaded machine (silence, not a level change) is
            // not mistaken for attenuation.
            let level_db = 20.0 * (median_window_rms(&signal) / expected_rms).log10();
            assert!(
                level_db.abs() < 1.0,
                "{layout:?} channel {ch}: level {level_db:.2} dB"
            );
        }
    }
}
