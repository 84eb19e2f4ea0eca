//! The real `lnvend` binary as the headless simulator (`lnvend sim --headless`), driven as
//! its stdin/stdout protocol is documented: a command per line in, a `screen …`/`credits …`
//! line per change out. For the tests that need a whole process: tests/crash.rs kills it
//! at each phase of a sale, tests/metrics.rs scrapes it with a real Prometheus. The process
//! is killed when the handle drops, however the test ends.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a test waits for an expected line before it fails.
const LINE_WAIT: Duration = Duration::from_secs(30);

pub struct Headless {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Headless {
    /// Starts `lnvend sim --headless --config cfg` (logs at warn, to nowhere).
    pub fn start(cfg: &Path) -> Headless {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lnvend"))
            .args(["sim", "--headless", "--config"])
            .arg(cfg)
            .env("LNVEND_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lnvend");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Headless {
            child,
            stdin,
            lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits for a line starting with `prefix` and returns it; earlier lines are dropped.
    pub fn wait_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + LINE_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(_) => panic!("lnvend never printed {prefix:?}"),
            }
        }
    }

    pub fn wait_for(&self, prefix: &str) {
        self.wait_line(prefix);
    }

    /// Every line printed within `d`.
    pub fn lines_for(&self, d: Duration) -> Vec<String> {
        let deadline = Instant::now() + d;
        let mut out = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            out.push(line);
        }
        out
    }

    /// The crash: SIGKILL, no destructor, no signal handler.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The exit status, if the process ends by itself within `limit`; else it is killed.
    pub fn exit_within(mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        None
    }

    /// `quit` on stdin; the process must exit with success.
    pub fn quit(mut self) {
        self.send("quit");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "lnvend exited with {status}");
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        // Harmless after kill9/quit: the child is reaped and its status kept.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
