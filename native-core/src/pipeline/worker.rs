//! A session that is one native thread: stop flag, finished flag, polled events and a counter
//! snapshot as JSON. The GameStream audio sender and the test-client receivers are all this shape,
//! so the ABI handles them through one [`MediaSession`] trait object.

use super::events::EventQueue;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the ABI can do with any running session.
pub trait MediaSession: Send {
    fn stats_json(&self) -> String;
    fn drain_events(&self, out: &mut [u8]) -> usize;
    fn is_finished(&self) -> bool;
    fn local_port(&self) -> u16;
    fn stop(&mut self);
}

/// State shared between a worker thread and its handle.
#[derive(Default)]
pub struct WorkerShared {
    pub stop: AtomicBool,
    pub finished: AtomicBool,
    pub events: EventQueue,
    counters: Mutex<BTreeMap<&'static str, serde_json::Value>>,
}

impl WorkerShared {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn add(&self, name: &'static str, delta: u64) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let entry = counters
            .entry(name)
            .or_insert(serde_json::Value::from(0u64));
        *entry = serde_json::Value::from(entry.as_u64().unwrap_or(0) + delta);
    }

    pub fn set(&self, name: &'static str, value: impl Into<serde_json::Value>) {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, value.into());
    }

    pub fn get(&self, name: &'static str) -> u64 {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    }

    pub fn event(&self, kind: &str, fields: &[(&str, serde_json::Value)]) {
        let mut object = serde_json::Map::new();
        object.insert("event".into(), kind.into());
        for (key, value) in fields {
            object.insert((*key).into(), value.clone());
        }
        self.events
            .push(serde_json::Value::Object(object).to_string());
    }
}

/// A running worker thread and its shared state.
pub struct Worker {
    pub shared: Arc<WorkerShared>,
    thread: Option<JoinHandle<()>>,
    local_port: u16,
}

impl Worker {
    /// Runs `body` on a named thread; `finished` is set (and a `stopped` event queued) when it
    /// returns, whatever the reason.
    pub fn spawn(
        name: &str,
        local_port: u16,
        body: impl FnOnce(&WorkerShared) + Send + 'static,
    ) -> Result<Self, String> {
        let shared = Arc::new(WorkerShared::default());
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                body(&thread_shared);
                thread_shared.finished.store(true, Ordering::SeqCst);
                thread_shared.event("stopped", &[]);
            })
            .map_err(|e| format!("spawn {name}: {e}"))?;
        Ok(Self {
            shared,
            thread: Some(thread),
            local_port,
        })
    }
}

impl MediaSession for Worker {
    fn stats_json(&self) -> String {
        let counters = self
            .shared
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let object: serde_json::Map<String, serde_json::Value> = counters
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect();
        serde_json::Value::Object(object).to_string()
    }

    fn drain_events(&self, out: &mut [u8]) -> usize {
        self.shared.events.drain_into(out)
    }

    fn is_finished(&self) -> bool {
        self.shared.finished.load(Ordering::SeqCst)
    }

    fn local_port(&self) -> u16 {
        self.local_port
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_events_and_stop() {
        let mut worker = Worker::spawn("pf-test-worker", 7, |shared| {
            shared.add("ticks", 2);
            shared.add("ticks", 3);
            shared.set("name", "x");
            while !shared.stopping() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
        .unwrap();
        while worker.shared.get("ticks") < 5 {
            std::thread::yield_now();
        }
        assert!(!worker.is_finished());
        worker.stop();
        assert!(worker.is_finished());
        let stats: serde_json::Value = serde_json::from_str(&worker.stats_json()).unwrap();
        assert_eq!(stats["ticks"], 5);
        assert_eq!(stats["name"], "x");
        assert_eq!(worker.local_port(), 7);
        let mut buf = [0u8; 256];
        let n = worker.drain_events(&mut buf);
        assert!(std::str::from_utf8(&buf[..n]).unwrap().contains("stopped"));
    }
}
