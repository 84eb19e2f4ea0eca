//! Logs as journald and a file see them: the real binary with stderr to a pipe writes plain
//! text, no ANSI escape codes (which `journalctl` and `grep` would show as garbage).

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn logs_to_a_pipe_carry_no_ansi_colours() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("machine.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}/data\"\n[[product]]\nname = \"Cola\"\nprice_sat = 2100\npour_ms = 1000\n[gpio]\nbackend = \"mock\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lnvend"))
        .args(["sim", "--headless", "--config"])
        .arg(&cfg)
        .env("LNVEND_LOG", "info")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A sale's worth of log lines, then out.
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "tap 0").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    writeln!(stdin, "cancel").unwrap();
    writeln!(stdin, "quit").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("transition"), "the log says little: {err}");
    assert!(!err.contains('\u{1b}'), "escape codes in a pipe: {err:?}");
}
