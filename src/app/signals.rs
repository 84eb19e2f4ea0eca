//! The pump's safety on the process's ways out: the panic hook and the stop signals
//! (SIGINT, SIGTERM, SIGHUP). A signal that kills the process would skip rppal's cleanup
//! and a swallowed panic would leave a dead controller behind a payable QR, so both are
//! caught here, for the service, the headless simulator and `lnvend pour` alike.

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::dispense::PulseDispenser;
use crate::pump::Pump;

/// When any thread or task panics: stops the pump, logs, runs the previous hook, and ends
/// the process. Left alone, tokio would swallow a task's panic and a dead controller would
/// leave a payable QR on the screen; ended, the process is restarted by systemd
/// (`Restart=always`), whose start-up turns an interrupted pour into an owed credit. The
/// unit's `LimitCORE=0` keeps the abort from writing a core file with secrets in it.
/// The pulse lines (`pulse`) are driven low too: the abort skips every drop guard, and a
/// relay line left high would hold a coin input or run a motor until `pump-off` runs.
pub(crate) fn install_panic_hook(pump: Pump, pulse: Option<PulseDispenser>) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let stopped = pump.emergency_stop();
        let lines = pulse.as_ref().map(PulseDispenser::emergency_stop);
        eprintln!(
            "lnvend: panic; pump stopped: {stopped}; pulse lines low: {lines:?}; aborting so \
             that lnvend is restarted"
        );
        previous(info);
        std::process::abort();
    }));
}

/// The name of the first of SIGINT, SIGTERM or SIGHUP to arrive. A signal that cannot be
/// caught is passed to `cannot_catch` and not waited for; with none caught this never
/// completes. The handlers are installed at the first poll.
pub async fn stop_signal(cannot_catch: impl Fn(&'static str, &std::io::Error)) -> &'static str {
    let catch = |kind, name| signal(kind).map_err(|e| cannot_catch(name, &e)).ok();
    let mut int = catch(SignalKind::interrupt(), "SIGINT");
    let mut term = catch(SignalKind::terminate(), "SIGTERM");
    let mut hup = catch(SignalKind::hangup(), "SIGHUP");
    // `next` never completes for a missing stream, so no branch is ever disabled and the
    // select cannot panic for want of one.
    tokio::select! {
        () = next(&mut int) => "SIGINT",
        () = next(&mut term) => "SIGTERM",
        () = next(&mut hup) => "SIGHUP",
    }
}

/// The next delivery of `s`; never, when it is not caught or its stream has ended.
async fn next(s: &mut Option<Signal>) {
    if let Some(s) = s {
        if s.recv().await.is_some() {
            return;
        }
    }
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::time::Duration;

    /// The service logs which signal stopped it: the name must be the one that was sent.
    /// SIGHUP, as nothing else in the test process waits for it (once caught by tokio it
    /// no longer ends the process).
    #[tokio::test]
    async fn the_signal_that_arrives_is_the_one_named() {
        let mut wait = Box::pin(stop_signal(|name, e| panic!("cannot catch {name}: {e}")));
        // The first poll installs the handlers; only then is the signal safe to raise.
        let pending =
            std::future::poll_fn(|cx| std::task::Poll::Ready(wait.as_mut().poll(cx).is_pending()))
                .await;
        assert!(pending);
        // SAFETY: raise has no memory-safety preconditions.
        assert_eq!(unsafe { libc::raise(libc::SIGHUP) }, 0);
        let name = tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("the waiter saw SIGHUP");
        assert_eq!(name, "SIGHUP");
    }
}
