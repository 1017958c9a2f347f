//! Test helper: a private Xvfb server on a free display number, stopped
//! (SIGTERM, then SIGKILL) when dropped — also when the test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::connection::Connection;

/// Display numbers tried: high enough to stay clear of real sessions
/// (usually :0–:10) and of the :99 that CI setups like to use by default.
const FIRST_DISPLAY: u32 = 90;
const LAST_DISPLAY: u32 = 120;
/// How long a starting server may take to accept connections; Xvfb needs
/// well under a second, the margin covers loaded CI machines.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Rotates the first candidate so tests running in parallel threads do
/// not race for the same number.
static NEXT_CANDIDATE: AtomicU32 = AtomicU32::new(0);

/// A running Xvfb child process.
pub(crate) struct Xvfb {
    child: Child,
    number: u32,
    stopped: bool,
}

impl Xvfb {
    /// Starts `Xvfb :N -screen 0 <screen> -nolisten tcp -noreset` on the first free
    /// display number and waits until it accepts connections. `Ok(None)`
    /// means the Xvfb binary is not installed.
    pub fn start(screen: &str) -> Result<Option<Self>, String> {
        let Some(binary) = find_in_path("Xvfb") else {
            return Ok(None);
        };
        let candidates = LAST_DISPLAY - FIRST_DISPLAY + 1;
        for _ in 0..candidates {
            let number =
                FIRST_DISPLAY + NEXT_CANDIDATE.fetch_add(1, Ordering::Relaxed) % candidates;
            if socket_path(number).exists() || lock_path(number).exists() {
                continue;
            }
            let child = Command::new(&binary)
                .arg(format!(":{number}"))
                .args(["-screen", "0", screen, "-nolisten", "tcp"])
                // Without -noreset the server regenerates whenever its last
                // client disconnects (e.g. the readiness probe), refusing
                // connections meanwhile.
                .arg("-noreset")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("spawning {}: {e}", binary.display()))?;
            let mut server = Xvfb {
                child,
                number,
                stopped: false,
            };
            if server.wait_until_ready() {
                return Ok(Some(server));
            }
            // Dropping `server` stops it; another process probably took
            // this number first, so try the next one.
        }
        Err(format!(
            "no usable display number in :{FIRST_DISPLAY}..=:{LAST_DISPLAY}"
        ))
    }

    /// Starts a server for a test that needs one. Such tests are
    /// `#[ignore = "needs Xvfb …"]` and named `needs_xvfb_…`: plain `cargo
    /// test` reports them as ignored (skipped), and `packaging/bootstrap.sh`
    /// runs them with `--ignored needs_xvfb_` when the binary is installed.
    /// Once asked for, a missing or broken Xvfb fails the test.
    pub fn require(screen: &str) -> Self {
        match Self::start(screen) {
            Ok(Some(server)) => server,
            Ok(None) => panic!("the Xvfb binary is not on PATH"),
            Err(reason) => panic!("cannot start Xvfb: {reason}"),
        }
    }

    /// The display name, e.g. `":93"`.
    pub fn display(&self) -> String {
        format!(":{}", self.number)
    }

    /// Stops the server (SIGTERM, SIGKILL after [`STOP_TIMEOUT`]) and
    /// reaps it. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: plain system call; `pid` is our unreaped child, so the
            // id cannot have been reused by another process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            sleep(POLL_INTERVAL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_until_ready(&mut self) -> bool {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                // Exited: typically "server already active" for this number.
                return false;
            }
            if socket_path(self.number).exists() && Connection::open(&self.display()).is_ok() {
                return true;
            }
            sleep(POLL_INTERVAL);
        }
        false
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        self.stop();
    }
}

fn socket_path(number: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X11-unix/X{number}"))
}

fn lock_path(number: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X{number}-lock"))
}

/// First file named `program` in a `PATH` directory.
fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    // Any of the user/group/other execute bits.
    const EXECUTE_BITS: u32 = 0o111;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & EXECUTE_BITS != 0)
        .unwrap_or(false)
}
