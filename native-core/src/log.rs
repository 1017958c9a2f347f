//! Native logging: a process-global, bounded queue of log records that the
//! control plane drains as JSON lines through `pf_log_drain`.
//!
//! Producers (any thread, including libav's via the log bridge in
//! `encode::libav_log`) never wait for the consumer: a record is formatted
//! into its JSON line before the queue lock is taken, the lock is held only to
//! push or pop, and when the queue is full the OLDEST record is dropped and
//! counted. The next drain then starts with a synthetic warn record saying how
//! many were dropped.
//!
//! Use the `pf_error!`/`pf_warn!`/`pf_info!`/`pf_debug!`/`pf_trace!` macros
//! (`target` first, then `format!` arguments) or [`log_str`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::json;

/// How many records the global queue holds before dropping the oldest.
pub const QUEUE_CAPACITY: usize = 4096;

/// Messages longer than this (in bytes) are truncated before queueing.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Upper bound of one record's JSON line, so a drain buffer of this size
/// always makes progress (every message byte escapes to at most 6 bytes).
pub const MAX_RECORD_BYTES: usize = 6 * (MAX_MESSAGE_BYTES + TRUNCATION_MARK.len()) + 256;

const TRUNCATION_MARK: &str = " [truncated]";

/// `pf_log_set_level` value that disables logging.
pub const LEVEL_OFF: u32 = 0;

/// Level used until `pf_log_set_level` is called (info).
pub const DEFAULT_LEVEL: u32 = Level::Info as u32;

/// Severity of a record; the numbers are the `pf_log_set_level` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl Level {
    /// The name used in the JSON `level` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

static MAX_LEVEL: AtomicU32 = AtomicU32::new(DEFAULT_LEVEL);
static GLOBAL_QUEUE: Mutex<Queue> = Mutex::new(Queue::new(QUEUE_CAPACITY));

/// Sets the most verbose level that is recorded: 0 = off, 1 = error ..
/// 5 = trace.
pub fn set_level(level: u32) -> Result<()> {
    if level > Level::Trace as u32 {
        return Err(Error::invalid_argument(format!(
            "log level {level} is out of range (0=off, 1=error, 2=warn, 3=info, 4=debug, 5=trace)"
        )));
    }
    MAX_LEVEL.store(level, Ordering::Relaxed);
    Ok(())
}

/// The current maximum level (0 = off .. 5 = trace).
pub fn max_level() -> u32 {
    MAX_LEVEL.load(Ordering::Relaxed)
}

/// Whether records at `level` are currently recorded.
pub fn enabled(level: Level) -> bool {
    level as u32 <= max_level()
}

/// Records a formatted message if `level` is enabled. Used by the macros.
pub fn log(level: Level, target: &'static str, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    match args.as_str() {
        Some(s) => log_str(level, target, s),
        None => log_str(level, target, &args.to_string()),
    }
}

/// Records `msg` if `level` is enabled.
pub fn log_str(level: Level, target: &'static str, msg: &str) {
    if !enabled(level) {
        return;
    }
    let line = format_record(unix_ms(), level, target, msg);
    lock_global().push(line);
}

/// Moves as many whole records as fit into `buf` as JSON lines and returns
/// the number of bytes written (0 when the queue is empty). Fails with
/// `PF_ERR_BUFFER_TOO_SMALL`, leaving everything queued, if not even the
/// first record fits.
pub fn drain(buf: &mut [u8]) -> Result<usize> {
    lock_global().drain_into(buf, unix_ms)
}

fn lock_global() -> MutexGuard<'static, Queue> {
    // The queue stays consistent even if a holder panicked (every mutation is
    // a single push/pop), so a poisoned lock is simply taken over.
    GLOBAL_QUEUE.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One record as a JSON line (with trailing `'\n'`); messages longer than
/// [`MAX_MESSAGE_BYTES`] are truncated at a character boundary.
pub fn format_record(t_ms: u64, level: Level, target: &str, msg: &str) -> String {
    let truncated;
    let msg = if msg.len() > MAX_MESSAGE_BYTES {
        let head = crate::last_error::truncate_at_char_boundary(msg, MAX_MESSAGE_BYTES);
        truncated = format!("{head}{TRUNCATION_MARK}");
        truncated.as_str()
    } else {
        msg
    };
    let mut line = String::with_capacity(64 + target.len() + msg.len());
    line.push_str("{\"t_ms\":");
    line.push_str(&t_ms.to_string());
    line.push_str(",\"level\":\"");
    line.push_str(level.as_str());
    line.push_str("\",\"target\":");
    json::write_string(&mut line, target);
    line.push_str(",\"msg\":");
    json::write_string(&mut line, msg);
    line.push_str("}\n");
    line
}

/// A bounded FIFO of pre-formatted JSON lines that drops its oldest entry
/// when full. The global log uses one; tests use their own.
#[derive(Debug)]
pub struct Queue {
    lines: VecDeque<String>,
    capacity: usize,
    dropped: u64,
}

impl Queue {
    /// An empty queue holding at most `capacity` records (at least 1).
    pub const fn new(capacity: usize) -> Self {
        Queue {
            lines: VecDeque::new(),
            capacity: if capacity == 0 { 1 } else { capacity },
            dropped: 0,
        }
    }

    /// Number of queued records.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no records are queued.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Records dropped since the last successful drain.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Appends a JSON line, dropping (and counting) the oldest if full.
    pub fn push(&mut self, line: String) {
        if self.lines.len() >= self.capacity {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(line);
    }

    /// See [`drain`]; `now_ms` stamps the synthetic "dropped" record.
    pub fn drain_into(&mut self, buf: &mut [u8], now_ms: impl FnOnce() -> u64) -> Result<usize> {
        let mut written = 0;
        if self.dropped > 0 {
            let notice = format_record(
                now_ms(),
                Level::Warn,
                "log",
                &format!("{} native log records dropped", self.dropped),
            );
            if notice.len() > buf.len() {
                return Err(too_small(buf.len(), notice.len()));
            }
            buf[..notice.len()].copy_from_slice(notice.as_bytes());
            written = notice.len();
            self.dropped = 0;
        }
        while let Some(line) = self.lines.front() {
            let end = written + line.len();
            if end > buf.len() {
                if written == 0 {
                    return Err(too_small(buf.len(), line.len()));
                }
                break;
            }
            buf[written..end].copy_from_slice(line.as_bytes());
            written = end;
            self.lines.pop_front();
        }
        Ok(written)
    }
}

fn too_small(cap: usize, needed: usize) -> Error {
    Error::buffer_too_small(format!(
        "log drain buffer of {cap} bytes cannot hold the next record ({needed} bytes)"
    ))
}

/// Logs at an explicit [`Level`]: `pf_log!(Level::Info, "encode", "x = {}", x)`.
#[macro_export]
macro_rules! pf_log {
    ($level:expr, $target:expr, $($arg:tt)+) => {{
        let level = $level;
        if $crate::log::enabled(level) {
            $crate::log::log(level, $target, ::std::format_args!($($arg)+));
        }
    }};
}

/// Logs at error level: `pf_error!("encode", "open failed: {}", e)`.
#[macro_export]
macro_rules! pf_error {
    ($target:expr, $($arg:tt)+) => { $crate::pf_log!($crate::log::Level::Error, $target, $($arg)+) };
}

/// Logs at warn level.
#[macro_export]
macro_rules! pf_warn {
    ($target:expr, $($arg:tt)+) => { $crate::pf_log!($crate::log::Level::Warn, $target, $($arg)+) };
}

/// Logs at info level.
#[macro_export]
macro_rules! pf_info {
    ($target:expr, $($arg:tt)+) => { $crate::pf_log!($crate::log::Level::Info, $target, $($arg)+) };
}

/// Logs at debug level.
#[macro_export]
macro_rules! pf_debug {
    ($target:expr, $($arg:tt)+) => { $crate::pf_log!($crate::log::Level::Debug, $target, $($arg)+) };
}

/// Logs at trace level.
#[macro_export]
macro_rules! pf_trace {
    ($target:expr, $($arg:tt)+) => { $crate::pf_log!($crate::log::Level::Trace, $target, $($arg)+) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::PF_ERR_BUFFER_TOO_SMALL;
    use serde_json::Value;

    fn record(i: usize) -> String {
        format_record(
            1_000 + i as u64,
            Level::Info,
            "test",
            &format!("record {i}"),
        )
    }

    fn parse_lines(bytes: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(bytes).expect("drained bytes are UTF-8");
        assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }

    fn msgs(values: &[Value]) -> Vec<String> {
        values
            .iter()
            .map(|v| v["msg"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn record_is_one_json_line_with_the_documented_fields() {
        let line = format_record(1_700_000_000_123, Level::Warn, "encode", "hello");
        assert_eq!(
            line,
            "{\"t_ms\":1700000000123,\"level\":\"warn\",\"target\":\"encode\",\"msg\":\"hello\"}\n"
        );
    }

    #[test]
    fn tricky_messages_parse_back_exactly() {
        let msg =
            "quote \" backslash \\ newline \n cr \r tab \t nul \u{0} esc \u{1b} bell \u{7} €😀";
        let line = format_record(5, Level::Error, "libav", msg);
        assert_eq!(
            line.matches('\n').count(),
            1,
            "only the terminating newline is raw"
        );
        let v: Value = serde_json::from_str(line.trim_end_matches('\n')).unwrap();
        assert_eq!(v["msg"], msg);
        assert_eq!(v["level"], "error");
        assert_eq!(v["target"], "libav");
        assert_eq!(v["t_ms"], 5);
    }

    #[test]
    fn long_messages_are_truncated_within_the_record_bound() {
        let worst = "\u{1}".repeat(MAX_MESSAGE_BYTES * 3);
        let line = format_record(u64::MAX, Level::Trace, "encode", &worst);
        assert!(
            line.len() <= MAX_RECORD_BYTES,
            "{} > {}",
            line.len(),
            MAX_RECORD_BYTES
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        let msg = v["msg"].as_str().unwrap();
        assert!(msg.ends_with(TRUNCATION_MARK));
        assert_eq!(msg.len(), MAX_MESSAGE_BYTES + TRUNCATION_MARK.len());
    }

    #[test]
    fn full_queue_drops_oldest_and_reports_the_count() {
        let mut q = Queue::new(3);
        for i in 0..5 {
            q.push(record(i));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped(), 2);

        let mut buf = vec![0u8; 4096];
        let n = q.drain_into(&mut buf, || 42).unwrap();
        let values = parse_lines(&buf[..n]);
        assert_eq!(
            msgs(&values),
            [
                "2 native log records dropped",
                "record 2",
                "record 3",
                "record 4"
            ]
        );
        assert_eq!(values[0]["level"], "warn");
        assert_eq!(values[0]["target"], "log");
        assert_eq!(values[0]["t_ms"], 42);
        assert!(q.is_empty());
        assert_eq!(q.dropped(), 0);

        // The notice is emitted once, not on every drain.
        q.push(record(9));
        let n = q.drain_into(&mut buf, || 43).unwrap();
        assert_eq!(msgs(&parse_lines(&buf[..n])), ["record 9"]);
    }

    #[test]
    fn empty_queue_drains_zero_bytes_even_into_an_empty_buffer() {
        let mut q = Queue::new(4);
        assert_eq!(q.drain_into(&mut [], || 0), Ok(0));
        assert_eq!(q.drain_into(&mut [0u8; 16], || 0), Ok(0));
    }

    #[test]
    fn drain_never_splits_a_record() {
        let mut q = Queue::new(100);
        let lines: Vec<String> = (0..20).map(record).collect();
        for l in &lines {
            q.push(l.clone());
        }
        let one = lines[0].len();
        // Room for two and a half records: exactly two come out.
        let mut buf = vec![0u8; one * 2 + one / 2];
        let n = q.drain_into(&mut buf, || 0).unwrap();
        assert_eq!(n, lines[0].len() + lines[1].len());
        assert_eq!(msgs(&parse_lines(&buf[..n])), ["record 0", "record 1"]);

        // Draining the rest in odd-sized chunks yields every record once, whole.
        let mut seen = Vec::new();
        let mut buf = vec![0u8; one + 7];
        loop {
            let n = q.drain_into(&mut buf, || 0).unwrap();
            if n == 0 {
                break;
            }
            seen.extend(msgs(&parse_lines(&buf[..n])));
        }
        let expected: Vec<String> = (2..20).map(|i| format!("record {i}")).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn too_small_buffer_keeps_the_record() {
        let mut q = Queue::new(4);
        q.push(record(0));
        let need = record(0).len();

        let err = q.drain_into(&mut vec![0u8; need - 1], || 0).unwrap_err();
        assert_eq!(err.status(), PF_ERR_BUFFER_TOO_SMALL);
        assert!(
            err.message().contains(&need.to_string()),
            "{}",
            err.message()
        );
        assert_eq!(q.len(), 1);
        assert_eq!(
            q.drain_into(&mut [], || 0).unwrap_err().status(),
            PF_ERR_BUFFER_TOO_SMALL
        );

        let mut buf = vec![0u8; need];
        assert_eq!(q.drain_into(&mut buf, || 0), Ok(need));
        assert_eq!(msgs(&parse_lines(&buf)), ["record 0"]);
    }

    #[test]
    fn too_small_for_the_dropped_notice_keeps_the_count() {
        let mut q = Queue::new(1);
        q.push(record(0));
        q.push(record(1));
        assert_eq!(q.dropped(), 1);
        assert!(q.drain_into(&mut [0u8; 10], || 0).is_err());
        assert_eq!((q.len(), q.dropped()), (1, 1));

        // Room for the notice but not the record: the notice alone comes out.
        let notice = format_record(0, Level::Warn, "log", "1 native log records dropped");
        let mut buf = vec![0u8; notice.len()];
        assert_eq!(q.drain_into(&mut buf, || 0), Ok(notice.len()));
        assert_eq!((q.len(), q.dropped()), (1, 0));
    }

    #[test]
    fn level_ordering_matches_the_abi_numbers() {
        assert!(Level::Error < Level::Warn && Level::Debug < Level::Trace);
        assert_eq!(Level::Info as u32, DEFAULT_LEVEL);
        let names: Vec<_> = [
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ]
        .iter()
        .map(|l| l.as_str())
        .collect();
        assert_eq!(names, ["error", "warn", "info", "debug", "trace"]);
    }

    #[test]
    fn set_level_rejects_out_of_range() {
        // Only out-of-range values here: the global level is shared with
        // other tests, which the end-to-end test in `abi` exercises.
        assert_eq!(
            set_level(6).unwrap_err().status(),
            crate::status::PF_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            set_level(u32::MAX).unwrap_err().status(),
            crate::status::PF_ERR_INVALID_ARGUMENT
        );
    }
}
