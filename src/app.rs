//! Assembling a machine from its configuration and running it: the pump (rppal or mock),
//! the payment backend, the ledger and the controller; then the UI on the main thread and
//! tokio on its own worker threads. This is also where the pump is made safe on every way
//! out: a panic hook and SIGINT/SIGTERM/SIGHUP handlers stop it before anything else, and the
//! controller stops it when it ends. A panic anywhere then aborts the process, for systemd
//! to restart it: a half-dead machine must not keep showing a payable QR.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use slint::ComponentHandle;
use tokio::sync::oneshot;

use crate::backend::sim::SimBackend;
use crate::backend::watch::WatchTiming;
use crate::backend::PaymentBackend;
use crate::config::{BackendConfig, Config, GpioBackend, Mode};
use crate::controller::{Controller, Input, Inputs, Settings};
use crate::ledger::Ledger;
use crate::notify::{Beat, Message, Notifier};
use crate::pump::mock::MockGpio;
use crate::pump::rpi::RppalPins;
use crate::pump::{L298n, Pins, Pump};
use crate::ui::{self, MachineWindow, SimWindow};

/// A machine, assembled and ready to run.
pub struct Machine {
    pub controller: Controller,
    pub pump: Pump,
    /// The mock pins, when GPIO is mocked.
    pub gpio: Option<MockGpio>,
    /// The simulated backend, when it is the backend.
    pub sim: Option<Arc<SimBackend>>,
    /// (BCM, name) of every configured pin.
    pub pin_names: Vec<(u8, String)>,
}

/// Controller settings from the configuration.
pub fn settings(config: &Config) -> Settings {
    Settings {
        machine_id: config.machine_id.clone(),
        catalog: crate::vend::catalog(config),
        invoice_expiry: config.invoice_expiry(),
        pour: config.pour_settings(),
        watch: WatchTiming::default(),
        health_every: Duration::from_secs(5),
        // A little more than one backend request, which may itself retry once quickly.
        request_timeout: backend_timeout(config) + Duration::from_secs(3),
        network: config.backend().network(),
        pin_hash: config
            .operator_pin_hash
            .as_ref()
            .and_then(|h| crate::operator::PinHash::parse(h.expose()).ok()),
        credit_window: config.credit_window(),
        max_pour: config
            .max_run()
            .saturating_sub(std::time::Duration::from_millis(config.gpio.anti_drip_ms)),
        fault_refund: config.refund_on_fault_screen,
        overrides_path: Some(crate::operator::overrides_path(&config.data_dir())),
        version: env!("CARGO_PKG_VERSION").to_string(),
        clock: Arc::new(crate::clock::SystemClock::new(config.require_clock_sync())),
    }
}

fn backend_timeout(config: &Config) -> Duration {
    Duration::from_millis(match config.backend() {
        BackendConfig::Sim(_) => 10_000,
        BackendConfig::Btcpay(c) => c.request_timeout_ms,
        BackendConfig::Cln(c) => c.request_timeout_ms,
        BackendConfig::Lnbits(c) => c.request_timeout_ms,
    })
}

/// Builds the pump, backend, ledger and controller that `config` describes. Call it inside
/// a tokio runtime: some backends start listeners.
pub fn assemble(config: &Config) -> anyhow::Result<Machine> {
    assemble_with_clock(config, None)
}

/// [`assemble`] with another clock than the system's (tests jump it and drop its sync).
pub fn assemble_with_clock(
    config: &Config,
    clock: Option<Arc<dyn crate::clock::Clock>>,
) -> anyhow::Result<Machine> {
    let clock: Arc<dyn crate::clock::Clock> = clock
        .unwrap_or_else(|| Arc::new(crate::clock::SystemClock::new(config.require_clock_sync())));
    let (a, b) = config.bridge_pins();
    let mut pin_names = vec![
        (a.forward, "IN1 (A forward)".to_string()),
        (a.reverse, "IN2 (A reverse)".to_string()),
        (a.enable, "ENA (A enable)".to_string()),
    ];
    if let Some(b) = b {
        pin_names.extend([
            (b.forward, "IN3 (B forward)".to_string()),
            (b.reverse, "IN4 (B reverse)".to_string()),
            (b.enable, "ENB (B enable)".to_string()),
        ]);
    }
    let (pins, gpio): (Box<dyn Pins>, Option<MockGpio>) = match config.gpio_backend() {
        GpioBackend::Mock => {
            if let Some(t) = &config.gpio.trace {
                if let Some(dir) = t.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
            }
            let gpio = MockGpio::new(config.gpio.trace.as_deref())
                .context("cannot open the pin trace file")?;
            (Box::new(gpio.pins()), Some(gpio))
        }
        GpioBackend::Rppal => {
            let all: Vec<u8> = pin_names.iter().map(|(p, _)| *p).collect();
            (
                Box::new(RppalPins::new(&all, config.gpio.pwm_frequency_hz)?),
                None,
            )
        }
    };
    let pump =
        Pump::new(L298n::new(pins, a, b), config.max_run()).context("cannot stop the pump")?;
    let (backend, sim): (Arc<dyn PaymentBackend>, Option<Arc<SimBackend>>) = match config.backend()
    {
        BackendConfig::Sim(c) => {
            let sim = Arc::new(
                SimBackend::new()
                    .with_clock(clock.clone())
                    .with_fiat_rate(c.fiat_rate_sat)
                    .with_store(config.data_dir().join("sim-backend.json")),
            );
            (sim.clone(), Some(sim))
        }
        BackendConfig::Btcpay(c) => (
            crate::backend::btcpay::BtcpayBackend::new(&c, &config.machine_id)?,
            None,
        ),
        BackendConfig::Cln(c) => (cln_backend(&c, &config.data_dir())?, None),
        BackendConfig::Lnbits(c) => (
            Arc::new(
                crate::backend::lnbits::LnbitsBackend::new(&c)
                    .context("cannot set up the LNbits backend")?,
            ),
            None,
        ),
    };
    let ledger = Ledger::open(&config.data_dir());
    // The operator's saved prices and pour times, if any and if still valid.
    let path = crate::operator::overrides_path(&config.data_dir());
    let effective = match crate::operator::load_overrides(&path).map_err(|e| e.to_string()) {
        Ok(o) => match config.with_overrides(&o) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "operator overrides ignored: they would make the config invalid");
                config.clone()
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "operator overrides ignored");
            config.clone()
        }
    };
    let mut settings = settings(config);
    settings.catalog = crate::vend::catalog(&effective);
    settings.clock = clock;
    let controller = Controller::new(settings, backend, pump.clone(), ledger);
    Ok(Machine {
        controller,
        pump,
        gpio,
        sim,
        pin_names,
    })
}

/// Core Lightning: the local socket when `rpc_socket` is given, clnrest when `url` is.
fn cln_backend(
    c: &crate::config::ClnConfig,
    data_dir: &std::path::Path,
) -> anyhow::Result<Arc<dyn PaymentBackend>> {
    use crate::backend::cln::{ClnBackend, SocketRpc};
    use crate::backend::clnrest::RestRpc;
    use crate::backend::http::TlsSettings;
    let timeout = Duration::from_millis(c.request_timeout_ms);
    match (&c.rpc_socket, &c.url) {
        (Some(socket), None) => Ok(Arc::new(ClnBackend::new(
            SocketRpc::new(socket.clone(), timeout),
            "cln",
            c.network,
            data_dir,
        ))),
        (None, Some(url)) => {
            let rune = c
                .rune
                .clone()
                .context("clnrest needs a rune (backend.rune or backend.rune_file)")?;
            let transport = c.transport().map_err(anyhow::Error::msg)?;
            let rpc = RestRpc::new(url, rune, &TlsSettings::from(&transport), timeout)?;
            Ok(Arc::new(ClnBackend::new(
                rpc, "clnrest", c.network, data_dir,
            )))
        }
        // The configuration loader refuses both and neither; this is the backstop.
        _ => anyhow::bail!("backend.cln: give rpc_socket or url, exactly one"),
    }
}

/// When any thread or task panics: stops the pump, logs, runs the previous hook, and ends
/// the process. Left alone, tokio would swallow a task's panic and a dead controller would
/// leave a payable QR on the screen; ended, the process is restarted by systemd
/// (`Restart=always`), whose start-up turns an interrupted pour into an owed credit. The
/// unit's `LimitCORE=0` keeps the abort from writing a core file with secrets in it.
pub(crate) fn install_panic_hook(pump: Pump) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let stopped = pump.emergency_stop();
        eprintln!("lnvend: panic; pump stopped: {stopped}; aborting so that lnvend is restarted");
        previous(info);
        std::process::abort();
    }));
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
    install_panic_hook(machine.pump.clone());

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
    let controller = rt.spawn(async move {
        machine
            .controller
            .run(async {
                let _ = stop_rx.await;
            })
            .await;
        // However the controller ended, the UI ends with it.
        let _ = slint::quit_event_loop();
    });
    rt.spawn(signals(pump.clone()));

    window.show_window().context("cannot show the window")?;
    tracing::info!(machine = %config.machine_id, ?mode, "lnvend is running");
    let notifier = systemd_ready(&rt, heartbeat, pump.clone());
    let ui_result = slint::run_event_loop_until_quit();
    let _ = notifier.send(&[Message::Stopping]);

    let _ = stop_tx.send(());
    let joined =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), controller).await });
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
async fn signals(pump: Pump) {
    let name = wait_for_signal().await;
    let stopped = pump.emergency_stop();
    tracing::warn!(
        signal = name,
        pump_stopped = stopped,
        "signal received; shutting down"
    );
    let _ = slint::quit_event_loop();
}

/// Waits for the first of several futures.
async fn futures_select_all<F: std::future::Future + Unpin>(
    futs: Vec<F>,
) -> (F::Output, usize, Vec<F>) {
    let mut futs = futs;
    std::future::poll_fn(move |cx| {
        for i in 0..futs.len() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(&mut futs[i]).poll(cx) {
                let rest = std::mem::take(&mut futs);
                return std::task::Poll::Ready((v, i, rest));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Tells systemd the machine is up (`READY=1`) and, when the unit has `WatchdogSec=`,
/// feeds its watchdog while both the controller loop and the UI thread keep beating. A
/// notifier that cannot be set up is logged and ignored: the machine still sells, only
/// without systemd's supervision. Returns the notifier for `STOPPING=1`.
fn systemd_ready(
    rt: &tokio::runtime::Runtime,
    controller: tokio::sync::watch::Receiver<tokio::time::Instant>,
    pump: Pump,
) -> Notifier {
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
    if let Some(period) = crate::notify::watchdog_period() {
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
        rt.spawn(crate::notify::feed_watchdog(
            open(),
            period,
            beats,
            nudge,
            on_hung,
        ));
    }
    notifier
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
    install_panic_hook(machine.pump.clone());
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
        let mut signals = Box::pin(wait_for_signal());
        tokio::spawn(async move {
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
        let _ = tokio::time::timeout(Duration::from_secs(5), controller).await;
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

/// The name of the first of SIGINT, SIGTERM or SIGHUP to arrive.
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut streams = Vec::new();
    for (kind, name) in [
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::hangup(), "SIGHUP"),
    ] {
        match signal(kind) {
            Ok(s) => streams.push((s, name)),
            Err(e) => tracing::error!(signal = name, error = %e, "cannot catch signal"),
        }
    }
    let futs = streams.iter_mut().map(|(s, name)| {
        Box::pin(async move {
            s.recv().await;
            *name
        })
    });
    let (name, _, _) = futures_select_all(futs.collect()).await;
    name
}
