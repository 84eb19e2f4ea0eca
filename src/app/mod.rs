//! Running an assembled machine with its touchscreen under systemd: the UI on the main
//! thread, tokio on its own worker threads, `READY=1`/`STOPPING=1` and the watchdog. The
//! pieces are built in [`crate::assemble`]; the pump's safety on a panic or a stop signal is
//! in [`signals`]; the windowless simulator is in [`headless`].
//!
//! The pump is stopped on every way out: by the panic hook and the signal task before
//! anything else, by the controller when it ends, and here once more after it. Every task
//! started here is joined or aborted before the runtime goes.

pub mod headless;
pub mod signals;

use std::time::Duration;

use anyhow::Context;
use slint::ComponentHandle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use crate::assemble::{assemble, assemble_with_clock, settings, Machine};
pub use headless::run_headless;

use crate::config::{Config, Mode};
use crate::notify::{Beat, Message, Notifier};
use crate::pump::Pump;
use crate::ui::{self, MachineWindow, SimWindow};
use signals::{install_panic_hook, stop_signal};

/// `hold = "always"`: the backend must say it can hold invoices, or lnvend does not start
/// (a node without the plugin, or a rune without its methods, is a configuration mistake
/// the operator should see at once, not at the first customer's tap).
async fn require_holds(
    backend: std::sync::Arc<dyn crate::backend::PaymentBackend>,
) -> anyhow::Result<()> {
    use crate::backend::HoldSupport;
    match tokio::time::timeout(std::time::Duration::from_secs(60), backend.hold_support()).await {
        Ok(Ok(HoldSupport::Yes)) => Ok(()),
        Ok(Ok(HoldSupport::No(why))) => {
            anyhow::bail!("backend.hold = \"always\", but the backend cannot hold invoices: {why}")
        }
        Ok(Err(e)) => anyhow::bail!(
            "backend.hold = \"always\", and the backend could not be asked whether it can hold invoices: {e}"
        ),
        Err(_) => anyhow::bail!(
            "backend.hold = \"always\", and the backend did not say within 60 s whether it can hold invoices"
        ),
    }
}

/// Runs the machine with its touchscreen until the window closes or a signal arrives.
pub fn run(config: Config, mode: Mode) -> anyhow::Result<()> {
    // Before any thread exists: the UI backend reads these from the environment.
    crate::display::prepare_ui_env(&config.display, mode);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lnvend-io")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let machine = {
        let _in_runtime = rt.enter();
        assemble(&config)?
    };
    if config.backend().hold() == crate::config::HoldMode::Always {
        rt.block_on(require_holds(machine.controller.backend()))?;
    }
    install_panic_hook(machine.pump.clone(), machine.pulse.clone());

    let inputs = machine.controller.inputs();
    // The simulator shows the same screen with its control panel beside it.
    let window: Box<dyn Shown> = match mode {
        Mode::Sim => {
            let w = SimWindow::new().context("cannot open the simulator window")?;
            ui::attach(&w, inputs.clone(), machine.controller.views(), rt.handle());
            ui::sim_panel::connect(
                &w,
                inputs.clone(),
                machine.sim.clone(),
                machine.gpio.clone(),
                machine.pin_names.clone(),
                machine.controller.views(),
                rt.handle(),
            );
            ui::sim_panel::connect_flow(&w, machine.flows.clone(), rt.handle());
            ui::sim_cards::connect(&w, machine.cards.clone(), machine.sim.clone(), rt.handle());
            Box::new(w)
        }
        Mode::Run => {
            let w = MachineWindow::new().context("cannot open the touchscreen window")?;
            ui::attach(&w, inputs.clone(), machine.controller.views(), rt.handle());
            w.window().set_fullscreen(true);
            Box::new(w)
        }
    };

    let heartbeat = machine.controller.heartbeat();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let pump = machine.pump.clone();
    let mut controller = rt.spawn(async move {
        machine
            .controller
            .run(async {
                let _ = stop_rx.await;
            })
            .await;
        // However the controller ended, the UI ends with it.
        let _ = slint::quit_event_loop();
    });
    let signal_task = rt.spawn(on_stop_signal(pump.clone()));

    window.show_window().context("cannot show the window")?;
    tracing::info!(machine = %config.machine_id, ?mode, "lnvend is running");
    let (notifier, watchdog) = systemd_ready(&rt, heartbeat, pump.clone());
    let ui_result = slint::run_event_loop_until_quit();
    let _ = notifier.send(&[Message::Stopping]);

    let _ = stop_tx.send(());
    let joined =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), &mut controller).await });
    // Until here a second signal still stops the pump and the watchdog is still fed.
    controller.abort();
    signal_task.abort();
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    pump.stop().context("cannot stop the pump")?;
    rt.shutdown_timeout(Duration::from_secs(1));
    ui_result.context("the UI event loop failed")?;
    match joined {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(anyhow::anyhow!("the controller failed: {e}")),
        Err(_) => Err(anyhow::anyhow!("the controller did not stop within 5 s")),
    }
}

/// Stops the pump at once on SIGINT, SIGTERM or SIGHUP, then asks the UI to quit (which
/// shuts the controller down). A signal that kills the process would skip rppal's cleanup.
async fn on_stop_signal(pump: Pump) {
    let name = stop_signal(|signal, e| {
        tracing::error!(signal, error = %e, "cannot catch signal");
    })
    .await;
    let stopped = pump.emergency_stop();
    tracing::warn!(
        signal = name,
        pump_stopped = stopped,
        "signal received; shutting down"
    );
    let _ = slint::quit_event_loop();
}

/// Tells systemd the machine is up (`READY=1`) and, when the unit has `WatchdogSec=`,
/// feeds its watchdog while both the controller loop and the UI thread keep beating. A
/// notifier that cannot be set up is logged and ignored: the machine still sells, only
/// without systemd's supervision. Returns the notifier for `STOPPING=1` and the watchdog
/// feeder's task, to end it on the way out.
fn systemd_ready(
    rt: &tokio::runtime::Runtime,
    controller: tokio::sync::watch::Receiver<tokio::time::Instant>,
    pump: Pump,
) -> (Notifier, Option<JoinHandle<()>>) {
    let open = || {
        Notifier::from_env().unwrap_or_else(|e| {
            tracing::error!(error = %e, "no systemd notifications");
            Notifier::disabled()
        })
    };
    let notifier = open();
    // Ready once the event loop runs, i.e. the window is shown and being drawn.
    let ready = open();
    let queued = slint::invoke_from_event_loop(move || {
        if let Err(e) = ready.send(&[Message::Ready, Message::Status("serving".into())]) {
            tracing::error!(error = %e, "cannot tell systemd the machine is ready");
        }
    });
    if let Err(e) = queued {
        tracing::error!(error = %e, "cannot tell systemd the machine is ready");
    }
    let Some(period) = crate::notify::watchdog_period() else {
        return (notifier, None);
    };
    // The UI thread beats only when asked: a hung event loop never runs the closure.
    let (ui_tx, ui) = tokio::sync::watch::channel(tokio::time::Instant::now());
    let nudge = move || {
        let tx = ui_tx.clone();
        let _ = slint::invoke_from_event_loop(move || {
            tx.send_replace(tokio::time::Instant::now());
        });
    };
    let beats = vec![
        Beat {
            name: "controller",
            last: controller,
        },
        Beat {
            name: "ui",
            last: ui,
        },
    ];
    let on_hung = move || {
        pump.emergency_stop();
    };
    let feeder = rt.spawn(crate::notify::feed_watchdog(
        open(),
        period,
        beats,
        nudge,
        on_hung,
    ));
    (notifier, Some(feeder))
}

/// Either window, to show it.
trait Shown {
    fn show_window(&self) -> Result<(), slint::PlatformError>;
}

impl<T: ComponentHandle> Shown for T {
    fn show_window(&self) -> Result<(), slint::PlatformError> {
        self.show()
    }
}
