//! Building a machine from its configuration: the pump (rppal or mock pins), the payment
//! backend, the ledger and the controller, without running any of them.
//!
//! This is the one place that claims the bridge's pins and builds the [`Pump`]
//! ([`open_pump`], also used by `lnvend pour` and `lnvend pump-off`), and the one place that
//! builds a payment backend ([`open_backend`]): what the bench commands drive is what a sale
//! drives, and a new backend is wired in once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::backend::sim::SimBackend;
use crate::backend::watch::WatchTiming;
use crate::backend::PaymentBackend;
use crate::clock::Clock;
use crate::config::{BackendConfig, ClnConfig, Config, GpioBackend, GpioConfig};
use crate::controller::{Controller, Settings};
use crate::dispense::{MachineDispenser, PulseDispenser, PumpDispenser};
use crate::ledger::Ledger;
use crate::pump::gpiochip::GpiochipPins;
use crate::pump::mock::MockGpio;
use crate::pump::rpi::RppalPins;
use crate::pump::{BridgePins, L298n, Pins, Pump, PumpError};

/// How much longer than `TimeoutStartSec` systemd waits for a start that migrates the
/// ledger (see [`Ledger::upgrade_pending`]): 3M sales took 18 s on the build machine; a Pi
/// reading a ledger bigger than its memory from an SD card is many times slower.
const LEDGER_MIGRATION_TIME: Duration = Duration::from_secs(15 * 60);

/// Why the pins or the pump could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OpenPumpError {
    #[error("cannot open the pin trace file: {0}")]
    Trace(#[source] std::io::Error),
    #[error(transparent)]
    Pump(#[from] PumpError),
    #[error("cannot claim the pulse lines: {0}")]
    Pulse(#[from] crate::dispense::PulseError),
}

/// A machine, assembled and ready to run.
pub struct Machine {
    pub controller: Controller,
    pub pump: Pump,
    /// The pulse lines (None: no pulse product), for the panic hook to drive low.
    pub pulse: Option<PulseDispenser>,
    /// The mock pins, when GPIO is mocked.
    pub gpio: Option<MockGpio>,
    /// The simulated backend, when it is the backend.
    pub sim: Option<Arc<SimBackend>>,
    /// (BCM, name) of every configured pin.
    pub pin_names: Vec<(u8, String)>,
    /// The `/metrics` listener, when `[metrics] listen` is set (it stops when dropped).
    pub metrics: Option<crate::metrics::server::MetricsListener>,
    /// The simulated flow sensors of mock GPIO (tank-empty switch, pulse rate).
    pub flows: Vec<crate::pump::flow_mock::MockFlow>,
    /// The virtual NFC reader's card feed (`[nfc] reader = "virtual"`).
    pub cards: Option<crate::nfc::reader::FakeCards>,
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
            .saturating_sub(Duration::from_millis(config.gpio.anti_drip_ms)),
        fault_refund: config.refund_on_fault_screen,
        overrides_path: Some(crate::operator::overrides_path(&config.data_dir())),
        version: env!("CARGO_PKG_VERSION").to_string(),
        wallet_hint: config
            .display
            .wallet_hint
            .as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_string(),
        language: config.display.language().to_string(),
        pictures: config.pictures.clone(),
        clock: Arc::new(crate::clock::SystemClock::new(config.require_clock_sync())),
        flow: Vec::new(),
        stock: config
            .product_specs()
            .iter()
            .map(crate::controller::StockSpec::of)
            .collect(),
        hold: config.backend().hold(),
        pulses: config.product_specs().iter().map(|p| p.pulse).collect(),
        mdb: config
            .mdb
            .clone()
            .map(|config_mdb| crate::controller::MdbSettings {
                config: config_mdb,
                currency: config.currency.clone(),
                pictures: config.mdb_pictures.clone(),
            }),
    }
}

/// The flow sensors of the config: rppal inputs on the Pi, simulated sensors (which need a
/// tokio runtime) on mock GPIO.
pub fn open_flow(
    g: &GpioConfig,
    gpio: Option<&MockGpio>,
) -> Result<
    (
        Vec<crate::controller::FlowChannel>,
        Vec<crate::pump::flow_mock::MockFlow>,
    ),
    PumpError,
> {
    use crate::pump::flow::{debounce_for, PulseCounter, RppalFlow, YF_S201_MAX_L_PER_MIN};
    use crate::pump::flow_mock::{MockFlow, PulseTrain};
    use crate::pump::Channel;
    let (a, b) = bridge_pins(g);
    let mut channels = Vec::new();
    let mut mocks = Vec::new();
    for (channel, pins) in [(Channel::A, Some(a)), (Channel::B, b)] {
        let (Some(pins), Some(f)) = (pins, crate::config::flow::sensor(g, channel)) else {
            continue;
        };
        let debounce = debounce_for(f.pulses_per_litre, YF_S201_MAX_L_PER_MIN);
        let sensor: Arc<dyn crate::pump::flow::FlowSensor> = match gpio {
            Some(gpio) => {
                let train = PulseTrain::flowing(f.mock_ml_per_s, f.pulses_per_litre);
                let mock = MockFlow::start(gpio, f.pin, pins, train, PulseCounter::new(debounce));
                let counter = mock.counter();
                mocks.push(mock);
                Arc::new(counter)
            }
            None => Arc::new(RppalFlow::open(
                f.pin,
                f.pull == crate::config::flow::Pull::Up,
                debounce,
            )?),
        };
        channels.push(crate::controller::FlowChannel {
            channel,
            sensor,
            config: f,
        });
    }
    Ok((channels, mocks))
}

fn backend_timeout(config: &Config) -> Duration {
    Duration::from_millis(match config.backend() {
        BackendConfig::Sim(_) => 10_000,
        BackendConfig::Btcpay(c) => c.request_timeout_ms,
        BackendConfig::Cln(c) => c.request_timeout_ms,
        BackendConfig::Lnbits(c) => c.request_timeout_ms,
        BackendConfig::Nwc(c) => c.request_timeout_ms,
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
    clock: Option<Arc<dyn Clock>>,
) -> anyhow::Result<Machine> {
    let clock: Arc<dyn Clock> = clock
        .unwrap_or_else(|| Arc::new(crate::clock::SystemClock::new(config.require_clock_sync())));
    // The simulator's trace may point into a data directory that does not exist yet.
    if config.gpio_backend() == GpioBackend::Mock {
        if let Some(dir) = config.gpio.trace.as_deref().and_then(Path::parent) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    let (pump, gpio) = open_pump(config)?;
    let mut pin_names: Vec<(u8, String)> = pin_names(&config.gpio)
        .into_iter()
        .map(|(pin, name)| (pin, name.to_string()))
        .collect();
    for p in config.product_specs() {
        if let Some(s) = p.pulse {
            if !pin_names.iter().any(|(pin, _)| *pin == s.pin) {
                pin_names.push((s.pin, format!("pulse ({})", p.name)));
            }
        }
    }
    let data_dir = config.data_dir();
    let Backend { backend, sim } = open_backend(config, clock.clone(), &data_dir)?;
    if Ledger::upgrade_pending(&data_dir) {
        // systemd would kill a start that outlasts TimeoutStartSec, roll the migration back
        // and start again, for ever: ask for the time a big ledger's migration may take.
        tracing::warn!(
            "migrating the sales ledger to this version's schema; a big ledger takes a while"
        );
        if let Ok(n) = crate::notify::Notifier::from_env() {
            let _ = n.send(&[crate::notify::Message::ExtendTimeout(LEDGER_MIGRATION_TIME)]);
        }
    }
    let ledger = Ledger::open(&data_dir);
    // The operator's saved prices and pour times, if any and if still valid.
    let path = crate::operator::overrides_path(&data_dir);
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
    settings.stock = effective
        .product_specs()
        .iter()
        .map(crate::controller::StockSpec::of)
        .collect();
    settings.clock = clock;
    let (flow, flows) = open_flow(&effective.gpio, gpio.as_ref())?;
    settings.flow = flow;
    let pour = settings.pour;
    let mut controller = Controller::new(settings, backend, pump.clone(), ledger);
    let pulse = open_pulse(config, gpio.as_ref())?;
    let mut dispenser =
        MachineDispenser::new(PumpDispenser::new(pump.clone(), pour), pulse.clone());
    if let Some(m) = &config.mdb {
        // A HAT that cannot be opened is a HAT that is down: the machine starts out of
        // service and says why, and the port is opened again until it answers.
        let port = m.port.clone();
        let (link, events, task) = crate::dispense::hat::spawn_reopening(
            move || crate::dispense::tty::Tty::open(&port),
            m.silence(),
            m.always_idle,
        );
        dispenser = dispenser.with_mdb(crate::dispense::MdbDispenser::new(
            link.clone(),
            m.vend_timeout(),
        ));
        controller.attach_mdb(link, events, task);
    }
    controller.set_dispenser(Arc::new(dispenser));
    let cards = attach_card_reader(&mut controller, &config.nfc)?;
    // A port that cannot be had is logged, not fatal: the machine sells without metrics
    // rather than standing still over them (the "machine down" alert then fires).
    let metrics = config.metrics.listen_addr().and_then(|addr| {
        crate::metrics::server::MetricsListener::start(addr, controller.metrics())
            .map_err(|e| tracing::error!(error = %e, "no /metrics"))
            .ok()
    });
    Ok(Machine {
        controller,
        pump,
        pulse,
        gpio,
        sim,
        pin_names,
        metrics,
        flows,
        cards,
    })
}

/// Starts the `[nfc]` reader on a thread of its own, feeding the controller's one channel.
/// A reader that cannot be opened leaves the machine selling by QR, its reason on the
/// operator's Status tab. Returns the virtual reader's card feed, when it is the reader.
fn attach_card_reader(
    controller: &mut Controller,
    cfg: &crate::config::NfcConfig,
) -> anyhow::Result<Option<crate::nfc::reader::FakeCards>> {
    use crate::controller::Input;
    use crate::nfc::{NfcEvent, ReaderHealth};
    if !cfg.enabled() {
        return Ok(None);
    }
    controller.enable_cards(crate::nfc::SafeGet::new(cfg)?);
    let inputs = controller.inputs();
    match crate::nfc::open_reader(cfg) {
        Ok((reader, cards)) => {
            if cards.is_some() {
                // The virtual reader is there as soon as it exists.
                inputs.send(Input::Nfc(NfcEvent::Health(ReaderHealth::Ready)));
            }
            let feed = inputs.clone();
            crate::nfc::reader::spawn(reader, cfg.allow_insecure_http, move |e| {
                feed.send(Input::Nfc(e))
            })
            .context("cannot start the NFC reader thread")?;
            Ok(cards)
        }
        Err(why) => {
            tracing::error!(reason = %why, "NFC reader unavailable; selling by QR only");
            inputs.send(Input::Nfc(NfcEvent::Health(ReaderHealth::Down(why))));
            Ok(None)
        }
    }
}

/// The pump the config describes, every output driven low. The mock pins come back too, for
/// tests, the simulator's panel and `gpio.backend = "mock"` at a desk.
pub fn open_pump(config: &Config) -> Result<(Pump, Option<MockGpio>), OpenPumpError> {
    let (bridge, gpio) = open_bridge(&config.gpio)?;
    let pump = Pump::new(bridge, config.max_run())?;
    Ok((pump, gpio))
}

/// The pulse products' lines, claimed apart from the bridge and driven low (None: no pulse
/// product). Mock GPIO records them with the bridge's pins, in the same trace.
pub fn open_pulse(
    config: &Config,
    gpio: Option<&MockGpio>,
) -> Result<Option<PulseDispenser>, OpenPumpError> {
    let lines = crate::config::dispenser::pulse_lines(&config.products);
    if lines.is_empty() {
        return Ok(None);
    }
    Ok(Some(PulseDispenser::new(
        pulse_pins(&config.gpio, &lines, gpio)?,
        &lines,
    )?))
}

/// The pins of the pulse `lines`, claimed on `g`'s backend (the mock's, when given).
pub fn pulse_pins(
    g: &GpioConfig,
    lines: &[u8],
    gpio: Option<&MockGpio>,
) -> Result<Box<dyn Pins>, OpenPumpError> {
    let pins: Box<dyn Pins> = match (g.backend, gpio) {
        (GpioBackend::Mock, Some(gpio)) => Box::new(gpio.pins()),
        (GpioBackend::Mock, None) => {
            let gpio = MockGpio::new(g.trace.as_deref()).map_err(OpenPumpError::Trace)?;
            Box::new(gpio.pins())
        }
        (GpioBackend::Rppal, _) => Box::new(RppalPins::new(lines, g.pwm_frequency_hz)?),
        (GpioBackend::Gpiochip, _) => {
            let chip = g.chip_selector().ok_or_else(|| {
                OpenPumpError::Pump(PumpError::Fault("gpio.chip is not set".into()))
            })?;
            Box::new(GpiochipPins::new(&chip, lines)?)
        }
    };
    Ok(pins)
}

/// The bridge the `[gpio]` table alone describes (`pump-off` reads nothing else), and its
/// mock pins when they are mocked. Claiming a pin here is the only way lnvend claims one.
pub fn open_bridge(g: &GpioConfig) -> Result<(L298n, Option<MockGpio>), OpenPumpError> {
    let (a, b) = bridge_pins(g);
    let (pins, gpio): (Box<dyn Pins>, Option<MockGpio>) = match g.backend {
        GpioBackend::Mock => {
            let gpio = MockGpio::new(g.trace.as_deref()).map_err(OpenPumpError::Trace)?;
            (Box::new(gpio.pins()), Some(gpio))
        }
        GpioBackend::Rppal => {
            let all: Vec<u8> = pin_names(g).into_iter().map(|(p, _)| p).collect();
            (Box::new(RppalPins::new(&all, g.pwm_frequency_hz)?), None)
        }
        GpioBackend::Gpiochip => {
            let all: Vec<u8> = pin_names(g).into_iter().map(|(p, _)| p).collect();
            let chip = g.chip_selector().ok_or_else(|| {
                OpenPumpError::Pump(PumpError::Fault("gpio.chip is not set".into()))
            })?;
            (Box::new(GpiochipPins::new(&chip, &all)?), None)
        }
    };
    Ok((L298n::new(pins, a, b), gpio))
}

/// The bridge pins of channel A and, when wired, channel B, from the `[gpio]` table.
pub fn bridge_pins(g: &GpioConfig) -> (BridgePins, Option<BridgePins>) {
    let a = g.channel_a;
    let b = g.channel_b.map(|b| BridgePins {
        forward: b.in3,
        reverse: b.in4,
        enable: b.enb,
    });
    (
        BridgePins {
            forward: a.in1,
            reverse: a.in2,
            enable: a.ena,
        },
        b,
    )
}

/// (BCM, L298N name) of every configured pin, channel A first.
fn pin_names(g: &GpioConfig) -> Vec<(u8, &'static str)> {
    let (a, b) = bridge_pins(g);
    let mut names = vec![
        (a.forward, "IN1 (A forward)"),
        (a.reverse, "IN2 (A reverse)"),
        (a.enable, "ENA (A enable)"),
    ];
    if let Some(b) = b {
        names.extend([
            (b.forward, "IN3 (B forward)"),
            (b.reverse, "IN4 (B reverse)"),
            (b.enable, "ENB (B enable)"),
        ]);
    }
    names
}

/// A payment backend, and the simulated one again when it is the one (the simulator's panel
/// and headless commands pay and expire its invoices).
pub struct Backend {
    pub backend: Arc<dyn PaymentBackend>,
    pub sim: Option<Arc<SimBackend>>,
}

/// The payment backend `config` describes. `clock`
/// and `data_dir` are the machine's: the simulator keeps its invoices there, Core Lightning
/// its catch-up cursor.
pub fn open_backend(
    config: &Config,
    clock: Arc<dyn Clock>,
    data_dir: &Path,
) -> anyhow::Result<Backend> {
    let (backend, sim): (Arc<dyn PaymentBackend>, _) = match config.backend() {
        BackendConfig::Sim(c) => {
            let sim = Arc::new(
                SimBackend::new()
                    .with_clock(clock)
                    .with_fiat_rate(c.fiat_rate_sat)
                    .with_store(data_dir.join("sim-backend.json")),
            );
            // The simulator holds only when asked to always (see `SimBackend::set_holds`).
            sim.set_holds(c.hold == crate::config::HoldMode::Always);
            (sim.clone(), Some(sim))
        }
        BackendConfig::Btcpay(c) => (
            crate::backend::btcpay::BtcpayBackend::new(&c, &config.machine_id)?,
            None,
        ),
        BackendConfig::Cln(c) => (cln_backend(&c, data_dir)?, None),
        BackendConfig::Lnbits(c) => (
            Arc::new(
                crate::backend::lnbits::LnbitsBackend::new(&c)
                    .context("cannot set up the LNbits backend")?
                    .with_clock(clock),
            ),
            None,
        ),
        BackendConfig::Nwc(c) => (
            Arc::new(
                crate::backend::nwc::NwcBackend::from_config(&c, clock)
                    .context("cannot set up the Nostr Wallet Connect backend")?,
            ),
            None,
        ),
    };
    Ok(Backend { backend, sim })
}

/// Core Lightning: the local socket when `rpc_socket` is given, clnrest when `url` is.
fn cln_backend(c: &ClnConfig, data_dir: &Path) -> anyhow::Result<Arc<dyn PaymentBackend>> {
    use crate::backend::cln::{ClnBackend, SocketRpc};
    use crate::backend::clnrest::RestRpc;
    use crate::backend::http::TlsSettings;
    // A certificate pin that does not parse is a refusal, never a silent fall-back to
    // the public roots.
    let transport = c.transport().map_err(|e| anyhow::anyhow!("backend: {e}"))?;
    let timeout = transport.request_timeout;
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
            let tls = TlsSettings::from(&transport);
            let rpc = RestRpc::new(url, rune, &tls, timeout)?;
            Ok(Arc::new(ClnBackend::new(
                rpc, "clnrest", c.network, data_dir,
            )))
        }
        // The configuration loader refuses both and neither; this is the backstop.
        _ => anyhow::bail!("backend.cln: give rpc_socket or url, exactly one"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::pump::mock::PinValue;

    const CONFIG: &str = r#"
[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 4000

[gpio]
backend = "mock"

[gpio.channel_b]
in3 = 5
in4 = 6
enb = 13
"#;

    #[test]
    fn every_configured_pin_is_named_and_starts_low() {
        let c = Config::parse(CONFIG, "test.toml", Mode::Sim).unwrap();
        let (_pump, gpio) = open_pump(&c).unwrap();
        let gpio = gpio.unwrap();
        let names = pin_names(&c.gpio);
        assert_eq!(
            names.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            vec![23, 24, 18, 5, 6, 13]
        );
        assert_eq!(names[5].1, "ENB (B enable)");
        for (pin, name) in names {
            assert_eq!(gpio.level(pin), Some(PinValue::Level(false)), "{name}");
        }
    }
}
