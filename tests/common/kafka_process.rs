//! Process supervision for the cluster kit (`kafka.rs`): every broker and MirrorMaker runs under a watchdog
//! shell, so nothing outlives the test process.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process under a watchdog shell that ends it when this test process is gone, and then removes the
/// process's folder (the one holding its log) and that folder's parent if empty: clusters kept in a `static`
/// are never dropped. The watchdog writes the real process id to `<log>.pid` so a hard kill reaches the JVM.
pub(super) struct Watched {
    shell: Child,
    pid_file: PathBuf,
    what: String,
}

impl Watched {
    pub(super) fn spawn(cmd: Command, log: &Path, what: &str) -> Self {
        let pid_file = log.with_extension("pid");
        let _ = std::fs::remove_file(&pid_file);
        let mut line = String::new();
        for part in std::iter::once(cmd.get_program()).chain(cmd.get_args()) {
            let _ = write!(line, "{} ", shell_quote(&part.to_string_lossy()));
        }
        // The shell starts the process, records its pid, and polls the owner; when the owner dies it ends the
        // process. SIGTERM to the shell (our drop) also ends it.
        let script = format!(
            "{line} >>{log} 2>&1 & child=$!; echo $child > {pid}; \
             trap 'kill -9 $child 2>/dev/null; exit 0' TERM INT; \
             while kill -0 {owner} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done; \
             kill -9 $child 2>/dev/null; wait $child; \
             if ! kill -0 {owner} 2>/dev/null; then rm -rf {dir}; rmdir \"$(dirname {dir})\" 2>/dev/null; fi",
            log = shell_quote(&log.to_string_lossy()),
            pid = shell_quote(&pid_file.to_string_lossy()),
            dir = shell_quote(&log.parent().unwrap_or(Path::new("/nonexistent")).to_string_lossy()),
            owner = std::process::id(),
        );
        let mut shell = Command::new("bash");
        shell.arg("-c").arg(script).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => shell.env(k, v),
                None => shell.env_remove(k),
            };
        }
        let shell = shell.spawn().unwrap_or_else(|e| panic!("starting {what}: {e}"));
        Self { shell, pid_file, what: what.to_string() }
    }

    pub(super) fn child_pid(&self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(pid) = std::fs::read_to_string(&self.pid_file).ok().and_then(|s| s.trim().parse().ok()) {
                return Some(pid);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL to the process itself, then the watchdog; waits for both.
    pub(super) fn kill_hard(&mut self) {
        if let Some(pid) = self.child_pid() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        let _ = self.shell.kill();
        let _ = self.shell.wait();
    }

    pub(super) fn exited(&mut self) -> bool {
        matches!(self.shell.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.kill_hard();
        let _ = &self.what;
    }
}

pub(super) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

pub(super) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
