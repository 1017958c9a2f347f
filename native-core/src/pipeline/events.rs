//! Rare pipeline events (started, encoder chosen, fallbacks, errors, stopped) for TS to poll.
//! Bounded, oldest dropped: a stalled control plane can never block or grow a media thread.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Far more than the handful a session produces between two polls (TS polls every ~200 ms).
pub const EVENT_CAPACITY: usize = 256;

#[derive(Default)]
pub struct EventQueue {
    inner: Mutex<(VecDeque<String>, u64)>,
}

impl EventQueue {
    /// Queues one event; `json` must be a complete JSON object without newlines.
    pub fn push(&self, json: String) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if guard.0.len() == EVENT_CAPACITY {
            guard.0.pop_front();
            guard.1 += 1;
        }
        guard.0.push_back(json);
    }

    /// Moves whole events into `out` as JSON lines until it is full; returns bytes written.
    pub fn drain_into(&self, out: &mut [u8]) -> usize {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut written = 0;
        if guard.1 > 0 {
            let line = format!("{{\"event\":\"events_dropped\",\"count\":{}}}\n", guard.1);
            if line.len() <= out.len() {
                out[..line.len()].copy_from_slice(line.as_bytes());
                written = line.len();
                guard.1 = 0;
            }
        }
        while let Some(event) = guard.0.front() {
            let needed = event.len() + 1;
            if written + needed > out.len() {
                break;
            }
            out[written..written + event.len()].copy_from_slice(event.as_bytes());
            out[written + event.len()] = b'\n';
            written += needed;
            guard.0.pop_front();
        }
        written
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_whole_lines_and_keeps_what_does_not_fit() {
        let queue = EventQueue::default();
        queue.push("{\"event\":\"a\"}".into());
        queue.push("{\"event\":\"bb\"}".into());
        let mut small = [0u8; 16];
        let n = queue.drain_into(&mut small);
        assert_eq!(&small[..n], b"{\"event\":\"a\"}\n");
        assert_eq!(queue.len(), 1);
        let mut big = [0u8; 64];
        let n = queue.drain_into(&mut big);
        assert_eq!(&big[..n], b"{\"event\":\"bb\"}\n");
        assert!(queue.is_empty());
    }

    #[test]
    fn overflow_drops_oldest_and_reports_it() {
        let queue = EventQueue::default();
        for i in 0..EVENT_CAPACITY + 3 {
            queue.push(format!("{{\"i\":{i}}}"));
        }
        let mut out = vec![0u8; 64 * 1024];
        let n = queue.drain_into(&mut out);
        let text = std::str::from_utf8(&out[..n]).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("{\"event\":\"events_dropped\",\"count\":3}")
        );
        assert_eq!(lines.next(), Some("{\"i\":3}"));
    }
}
