//! Where the logs go. Under systemd (stderr is the journal stream systemd named in
//! `JOURNAL_STREAM`) they go to journald natively, with every tracing field as a journal
//! field (`sale_id` → `SALE_ID`, `product` → `PRODUCT`, `state` → `STATE`), so
//! `journalctl -u lnvend SALE_ID=…` finds one sale. Elsewhere they go to stderr, coloured
//! only when stderr is a terminal: a file or a pipe gets plain text.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Sets up logging once, for the whole process (`LNVEND_LOG` picks the level; info).
pub fn init() {
    let filter =
        || EnvFilter::try_from_env("LNVEND_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let journal = stderr_is_journal(
        std::env::var("JOURNAL_STREAM").ok().as_deref(),
        stderr_dev_ino(),
    );
    if journal {
        match tracing_journald::layer() {
            Ok(layer) => {
                tracing_subscriber::registry()
                    .with(filter())
                    .with(
                        layer
                            .with_field_prefix(None)
                            .with_syslog_identifier("lnvend".into()),
                    )
                    .init();
                return;
            }
            // No journal socket (a container): plain lines on stderr, which systemd reads.
            Err(e) => eprintln!("lnvend: cannot log to journald ({e}); logging to stderr"),
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!journal && std::io::stderr().is_terminal());
    if journal {
        // The journal stamps each line itself.
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// Whether stderr is the journal stream `JOURNAL_STREAM` (`<device>:<inode>`) names, as
/// systemd documents it: the variable alone is inherited by every child of a unit, even
/// one whose stderr was redirected to a file.
pub fn stderr_is_journal(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|s| s.split_once(':')) else {
        return false;
    };
    match (dev.parse::<u64>(), ino.parse::<u64>(), stderr) {
        (Ok(d), Ok(i), Some(s)) => (d, i) == s,
        _ => false,
    }
}

fn stderr_dev_ino() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/self/fd/2").ok()?;
    Some((m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_stream_counts_as_the_journal() {
        assert!(stderr_is_journal(Some("8:1234"), Some((8, 1234))));
        // Inherited by a child whose stderr went elsewhere.
        assert!(!stderr_is_journal(Some("8:1234"), Some((8, 999))));
        assert!(!stderr_is_journal(None, Some((8, 1234))));
        assert!(!stderr_is_journal(Some("garbage"), Some((8, 1234))));
        assert!(!stderr_is_journal(Some("8:x"), Some((8, 1234))));
        assert!(!stderr_is_journal(Some("8:1234"), None));
    }
}
