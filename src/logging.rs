//! Where the logs go. Under systemd (stderr is the journal stream systemd named in
//! `JOURNAL_STREAM`) they go to journald natively, with every tracing field as a journal
//! field (`sale_id` → `SALE_ID`, `product` → `PRODUCT`, `state` → `STATE`), so
//! `journalctl -u lnvend SALE_ID=…` finds one sale. Elsewhere they go to stderr, coloured
//! only when stderr is a terminal: a file or a pipe gets plain text.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Sets up logging once, for the whole process (`LNVEND_LOG` picks the level; info).
pub fn init() {
    let filter = filter(std::env::var("LNVEND_LOG").ok().as_deref());
    let journal = stderr_is_journal(
        std::env::var("JOURNAL_STREAM").ok().as_deref(),
        stderr_dev_ino(),
    );
    if journal {
        match tracing_journald::layer() {
            Ok(layer) => {
                tracing_subscriber::registry()
                    .with(filter)
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
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!journal && std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(filter);
    if journal {
        // The journal stamps each line itself.
        registry.with(lines.without_time()).init();
    } else {
        registry.with(lines).init();
    }
}

/// What `LNVEND_LOG` lets through: a level (`debug`), or comma-separated `target=level`
/// directives with an optional bare default (`warn,lnvend::controller=debug`); unset or
/// unreadable, `info`. (A plain target filter rather than tracing's regex-based
/// `EnvFilter`: the kiosk binary is 1 MB smaller without the regex engine.)
pub fn filter(setting: Option<&str>) -> Targets {
    let info = || Targets::new().with_default(LevelFilter::INFO);
    match setting.map(str::trim) {
        None | Some("") => info(),
        Some(s) => s.parse().unwrap_or_else(|e| {
            eprintln!("lnvend: LNVEND_LOG={s:?} is not a log level ({e}); logging at info");
            info()
        }),
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
    fn lnvend_log_takes_a_level_or_targets_and_falls_back_to_info() {
        use tracing::Level;
        let f = filter(Some("debug"));
        assert!(f.would_enable("lnvend::controller", &Level::DEBUG));
        assert!(!f.would_enable("lnvend::controller", &Level::TRACE));
        let f = filter(Some("warn,lnvend::backend=debug"));
        assert!(f.would_enable("lnvend::backend::cln", &Level::DEBUG));
        assert!(!f.would_enable("lnvend::controller", &Level::INFO));
        assert!(f.would_enable("lnvend::controller", &Level::WARN));
        for unset_or_bad in [None, Some(""), Some("lnvend=loud"), Some("lnvend=debug=x")] {
            let f = filter(unset_or_bad);
            assert!(f.would_enable("lnvend", &Level::INFO), "{unset_or_bad:?}");
            assert!(!f.would_enable("lnvend", &Level::DEBUG), "{unset_or_bad:?}");
        }
    }

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
