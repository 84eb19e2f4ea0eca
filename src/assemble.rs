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
use crate::ledger::Ledger;
use crate::pump::gpiochip::GpiochipPins;
use crate::pump::mock::MockGpio;
use crate::pump::rpi::RppalPins;
use crate::pump::{BridgePins, L298n, Pins, Pump, PumpError};

/// Why the pins or the pump could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OpenPumpError {
    #[error("cannot open the pin trace file: {0}")]
    Trace(#[source] std::io::Error),
    #[error(transparent)]
    Pump(#[from] PumpError),
}

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
            .saturating_sub(Duration::from_millis(config.gpio.anti_drip_ms)),
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
    let pin_names = pin_names(&config.gpio)
        .into_iter()
        .map(|(pin, name)| (pin, name.to_string()))
        .collect();
    let data_dir = config.data_dir();
    let Backend { backend, sim } = open_backend(config, clock.clone(), &data_dir)?;
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

/// The pump the config describes, every output driven low. The mock pins come back too, for
/// tests, the simulator's panel and `gpio.backend = "mock"` at a desk.
pub fn open_pump(config: &Config) -> Result<(Pump, Option<MockGpio>), OpenPumpError> {
    let (bridge, gpio) = open_bridge(&config.gpio)?;
    let pump = Pump::new(bridge, config.max_run())?;
    Ok((pump, gpio))
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
                    .context("cannot set up the LNbits backend")?,
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
