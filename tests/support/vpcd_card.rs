//! pcscd with the vsmartcard-vpcd virtual reader, and a virtual NTAG 424 DNA that speaks
//! vpcd's socket protocol (2-byte big-endian length, then the payload; a 1-byte payload is
//! a control message: 0 power off, 1 power on, 2 reset, 4 "send your ATR"; anything longer
//! is an APDU to answer). Closing the socket takes the card off the reader, so one card
//! process (here: one thread) is one tap.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lnvend::nfc::virtual_card::VirtualNtag424;

/// vpcd's port for "Virtual PCD 00 00".
pub const VPCD_PORT: u16 = 35963;

/// The ATR an NTAG 424 DNA shows through a PC/SC contactless reader.
pub const NTAG424_ATR: [u8; 6] = [0x3B, 0x81, 0x80, 0x01, 0x80, 0x80];

/// pcscd is one per machine: the tests that use it take turns.
pub static PCSCD: Mutex<()> = Mutex::new(());

/// A pcscd in the foreground, in its own process group, stopped on drop.
pub struct Pcscd {
    child: Child,
}

impl Pcscd {
    /// Starts pcscd and waits until vpcd listens for a card.
    pub fn start() -> Pcscd {
        assert!(
            std::path::Path::new("/usr/lib/pcsc/drivers/serial/libifdvpcd.so").exists(),
            "vsmartcard-vpcd is not installed: run ./scripts/deps"
        );
        // LNVEND_PCSCD_LOG=<file>: pcscd's debug log (`-d`) goes there, for a failing test.
        let log = std::env::var_os("LNVEND_PCSCD_LOG").map(|f| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
                .expect("LNVEND_PCSCD_LOG file")
        });
        let mut args = vec!["-f", "--force-reader-polling"];
        if log.is_some() {
            args.push("-d");
        }
        let (out, err) = match &log {
            Some(f) => (
                Stdio::from(f.try_clone().unwrap()),
                Stdio::from(f.try_clone().unwrap()),
            ),
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new("pcscd")
            .args(args)
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("pcscd (package pcscd; run ./scripts/deps)");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // vpcd accepts a card only once pcscd has loaded it; this probe connects and
            // closes at once, which pcscd sees as a card that came and went.
            if TcpStream::connect(("127.0.0.1", VPCD_PORT)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "vpcd did not start listening");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        Pcscd { child }
    }

    /// Kills pcscd (and its group) as a crash or `systemctl restart` would.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let pid = self.child.id() as i32;
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        // The next pcscd must be able to take the port and the socket.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", VPCD_PORT)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lays a virtual NTAG 424 holding `uri` on the virtual reader, on a thread of its own.
/// With `remove_after = Some(n)` it leaves after answering `n` APDUs; otherwise it stays
/// until `hold` has passed after its last APDU.
pub fn tap(
    uri: &str,
    remove_after: Option<usize>,
    hold: Duration,
) -> std::thread::JoinHandle<usize> {
    let uri = uri.to_string();
    std::thread::spawn(move || {
        let mut card = VirtualNtag424::with_uri(&uri);
        let mut s = TcpStream::connect(("127.0.0.1", VPCD_PORT)).expect("vpcd listening");
        s.set_read_timeout(Some(hold)).unwrap();
        let mut apdus = 0;
        // pcscd keeps asking for the ATR while the card lies there: the card leaves `hold`
        // after its last APDU, whatever else it is asked.
        let mut last_apdu = Instant::now();
        loop {
            if last_apdu.elapsed() > hold {
                return apdus;
            }
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).is_err() {
                return apdus;
            }
            let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
            if s.read_exact(&mut msg).is_err() {
                return apdus;
            }
            let reply = match msg.as_slice() {
                [4] => NTAG424_ATR.to_vec(),
                [_] => continue, // power off / on / reset: no answer
                apdu => {
                    if remove_after.is_some_and(|n| apdus >= n) {
                        return apdus; // pulled away: the socket closes
                    }
                    apdus += 1;
                    last_apdu = Instant::now();
                    card.answer(apdu)
                }
            };
            let mut out = (reply.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&reply);
            if s.write_all(&out).is_err() {
                return apdus;
            }
        }
    })
}
