//! The simulator without a window (`lnvend sim --headless`): driven by lines on standard
//! input, reporting each screen on standard output, for scripts, CI and the crash tests
//! (tests/crash.rs reads its `screen …`, `credits …`, `ok` and `error …` lines, so their
//! form is part of its interface).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;

use super::signals::{install_panic_hook, stop_signal};
use crate::assemble::assemble;
use crate::backend::sim::SimBackend;
use crate::config::Config;
use crate::controller::{Input, Inputs};
use crate::pump::Pump;

/// The simulator without a window, driven by lines on standard input and reporting each
/// screen on standard output: for scripts, CI and crash tests.
///
/// Commands: `tap N`, `cancel`, `dismiss`, `redeem SALE`, `pay`, `expire`, `drop`,
/// `down on|off`, `fault on|off`, `crash` (a deliberate bug, for supervision tests: a panic
/// inside a tokio task), `quit`. Output: `screen NAME [detail]` at every change of screen,
/// and `ok`/`error …` after each command. It ends at end-of-file, `quit`, SIGINT, SIGTERM or
/// SIGHUP, with the pump off.
pub fn run_headless(config: Config) -> anyhow::Result<()> {
    use std::io::Write;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let machine = {
        let _in_runtime = rt.enter();
        assemble(&config)?
    };
    install_panic_hook(machine.pump.clone(), machine.pulse.clone());
    let pump = machine.pump.clone();
    let inputs = machine.controller.inputs();
    let mut views = machine.controller.views();
    let sim = machine.sim.clone();
    let gpio = machine.gpio.clone();
    let pump_at_exit = pump.clone();
    rt.block_on(async move {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let controller = tokio::spawn(machine.controller.run(async {
            let _ = stop_rx.await;
        }));
        let mut signals = Box::pin(stop_signal(|signal, e| {
            tracing::error!(signal, error = %e, "cannot catch signal");
        }));
        let mut printer = tokio::spawn(async move {
            let mut last = None;
            let mut last_credits: Vec<String> = Vec::new();
            loop {
                let (screen, detail, credits) = {
                    let v = views.borrow_and_update();
                    let credits: Vec<String> =
                        v.credits.iter().map(|c| c.sale_id.clone()).collect();
                    (v.screen, v.detail.clone(), credits)
                };
                if last != Some(screen) {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "screen {screen:?} {detail}");
                    let _ = out.flush();
                    last = Some(screen);
                }
                if credits != last_credits {
                    // The owed credits the public screen offers ("tap to pour").
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "credits {}", credits.join(" "));
                    let _ = out.flush();
                    last_credits = credits;
                }
                if views.changed().await.is_err() {
                    break;
                }
            }
        });
        let mut lines = stdin_lines()?;
        loop {
            let line = tokio::select! {
                line = lines.recv() => line,
                name = &mut signals => {
                    tracing::warn!(signal = name, pump_stopped = pump.emergency_stop(), "signal received; shutting down");
                    break;
                }
            };
            let Some(line) = line else { break };
            let words: Vec<&str> = line.split_whitespace().collect();
            let reply = match words.as_slice() {
                ["quit"] => break,
                ["tap", n] => match n.parse() {
                    Ok(n) => send(&inputs, Input::Tap(n)),
                    Err(_) => Err("tap needs a product number".to_string()),
                },
                ["cancel"] => send(&inputs, Input::Cancel),
                ["dismiss"] => send(&inputs, Input::DismissFault),
                ["redeem", id] => send(&inputs, Input::RedeemCredit((*id).to_string())),
                ["pay"] => sim_do(&sim, |s| s.pay_latest().map(|_| ()).map_err(|e| e.to_string())),
                ["expire"] => sim_do(&sim, |s| s.expire_latest().map(|_| ()).map_err(|e| e.to_string())),
                ["drop"] => sim_do(&sim, |s| {
                    s.drop_connections();
                    Ok(())
                }),
                ["down", on] => sim_do(&sim, |s| {
                    s.set_down(*on == "on");
                    Ok(())
                }),
                ["fault", on] => match &gpio {
                    Some(g) => {
                        g.inject_fault(*on == "on");
                        Ok(())
                    }
                    None => Err("GPIO is not mocked".into()),
                },
                ["crash"] => {
                    tokio::spawn(async {
                        panic!("the headless simulator's `crash` command: a deliberate bug");
                    });
                    Ok(())
                }
                _ => Err(format!("unknown command: {line}")),
            };
            let mut out = std::io::stdout().lock();
            let _ = match reply {
                Ok(()) => writeln!(out, "ok"),
                Err(e) => writeln!(out, "error {e}"),
            };
            let _ = out.flush();
        }
        let _ = stop_tx.send(());
        let mut controller = controller;
        if tokio::time::timeout(Duration::from_secs(5), &mut controller)
            .await
            .is_err()
        {
            controller.abort();
        }
        // A stopped controller drops its views, so the printer writes the last screen and
        // ends; one that is stuck is not waited for.
        if tokio::time::timeout(Duration::from_secs(1), &mut printer)
            .await
            .is_err()
        {
            printer.abort();
        }
        anyhow::Ok(())
    })?;
    pump_off(&pump_at_exit)
}

/// Standard input's lines, read on a plain thread. tokio's stdin reader is a blocking task
/// that the runtime waits for when it shuts down, so with stdin left open a signal could not
/// end the process. This thread is simply left blocked in `read` when the process exits.
fn stdin_lines() -> anyhow::Result<tokio::sync::mpsc::Receiver<String>> {
    use std::io::BufRead;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::Builder::new()
        .name("lnvend-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        })
        .context("cannot start the standard input reader")?;
    Ok(rx)
}

fn pump_off(pump: &Pump) -> anyhow::Result<()> {
    pump.stop().context("cannot stop the pump")
}

fn send(inputs: &Inputs, input: Input) -> Result<(), String> {
    if inputs.send(input) {
        Ok(())
    } else {
        Err("the controller has stopped".into())
    }
}

fn sim_do(
    sim: &Option<Arc<SimBackend>>,
    f: impl FnOnce(&SimBackend) -> Result<(), String>,
) -> Result<(), String> {
    match sim {
        Some(s) => f(s),
        None => Err("the payment backend is not the simulator".into()),
    }
}
