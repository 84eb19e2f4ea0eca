//! A real Nostr relay for the NWC tests (tests/nwc_relay.rs): PyPI's `nostr-relay`, from the
//! virtualenv `./scripts/nostr-relay-venv` makes (or `NOSTR_RELAY_VENV`), with its events in
//! a fresh SQLite file and a free loopback port; started in its own process group and killed
//! with its children when dropped.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The relay's virtualenv, if one has been made.
pub fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("NOSTR_RELAY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/nostr-relay-venv"));
    dir.join("bin/nostr-relay").exists().then_some(dir)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One relay process (and its gunicorn workers, in their own process group).
pub struct Relay {
    child: Option<Child>,
    venv: PathBuf,
    dir: PathBuf,
    pub port: u16,
    log: PathBuf,
}

impl Relay {
    /// Starts the relay from `venv` on `port` with its files in `dir`; waits until it
    /// accepts connections.
    pub async fn start(venv: &Path, dir: &Path, port: u16) -> Relay {
        use std::os::unix::process::CommandExt;
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("relay.yaml");
        std::fs::write(
            &config,
            format!(
                "DEBUG: false\n\
                 relay_name: lnvend test relay\n\
                 storage:\n  sqlalchemy.url: sqlite+aiosqlite:///{db}\n\
                 gunicorn:\n  bind: 127.0.0.1:{port}\n  workers: 1\n  loglevel: warning\n  control_socket_disable: true\n",
                db = dir.join("events.sqlite3").display()
            ),
        )
        .unwrap();
        let log = dir.join("relay.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(venv.join("bin/nostr-relay"))
            .arg("-c")
            .arg(&config)
            .arg("serve")
            .current_dir(dir)
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            // Its own group, so the whole server can be killed at once.
            .process_group(0)
            .spawn()
            .expect("start nostr-relay");
        let relay = Relay {
            child: Some(child),
            venv: venv.to_path_buf(),
            dir: dir.to_path_buf(),
            port,
            log,
        };
        relay.wait_ready().await;
        relay
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("nostr-relay did not listen within 30 s; its log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the relay as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id();
            // bash's builtin with `--` (see tests/support/lnbits_server.rs).
            if pgid > 1 {
                let _ = Command::new("bash")
                    .args(["-c", &format!("kill -s KILL -- -{pgid}")])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same files.
    pub async fn restart(&mut self) {
        self.kill();
        let again = Relay::start(&self.venv.clone(), &self.dir.clone(), self.port).await;
        *self = again;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}
