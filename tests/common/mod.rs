//! Shared set-up for the whole-machine tests: a machine assembled from a real config with the
//! simulated backend and mock GPIO, its ledger in a temporary directory.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lnvend::app;
use lnvend::backend::sim::SimBackend;
use lnvend::config::{Config, Mode};
use lnvend::controller::{Input, Inputs, Screen, View};
use lnvend::pump::mock::MockGpio;
use lnvend::pump::Pump;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// BCM pins of the test config.
pub const ENA: u8 = 18;
pub const ENB: u8 = 13;
pub const IN1: u8 = 23;

pub fn config_text(data_dir: &Path, extra: &str) -> String {
    format!(
        r#"
machine_id = "test-machine"
data_dir = "{}"
invoice_expiry_s = 300

[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 4000
channel = "A"

[[product]]
name = "Mate"
price_sat = 3000
pour_ms = 2500
channel = "B"

[gpio]
backend = "mock"

[gpio.channel_b]
in3 = 5
in4 = 6
enb = 13
{extra}
"#,
        data_dir.display()
    )
}

pub fn config(data_dir: &Path, extra: &str) -> Config {
    Config::parse(&config_text(data_dir, extra), "test.toml", Mode::Sim).expect("test config")
}

pub struct TestMachine {
    pub inputs: Inputs,
    pub views: watch::Receiver<View>,
    sim: Option<Arc<SimBackend>>,
    pub gpio: MockGpio,
    pub pump: Pump,
    /// What the machine's `/metrics` would show.
    pub metrics: Arc<lnvend::metrics::Metrics>,
    /// Its `/metrics` listener, when the config has one (it stops when dropped).
    _listener: Option<lnvend::metrics::server::MetricsListener>,
    /// The simulated flow sensors (products poured by volume).
    pub flows: Vec<lnvend::pump::flow_mock::MockFlow>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestMachine {
    pub fn start(config: &Config) -> TestMachine {
        TestMachine::start_with_clock(config, None)
    }

    /// A machine on a clock the test controls (see `lnvend::clock::FakeClock`).
    pub fn start_with_clock(
        config: &Config,
        clock: Option<Arc<dyn lnvend::clock::Clock>>,
    ) -> TestMachine {
        let m = app::assemble_with_clock(config, clock).expect("assemble");
        let inputs = m.controller.inputs();
        let views = m.controller.views();
        let metrics = m.controller.metrics();
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(m.controller.run(async {
            let _ = rx.await;
        }));
        TestMachine {
            inputs,
            views,
            sim: m.sim,
            gpio: m.gpio.expect("mock gpio"),
            pump: m.pump,
            metrics,
            _listener: m.metrics,
            flows: m.flows,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The simulated backend (panics for a machine with a real backend).
    pub fn sim(&self) -> &SimBackend {
        self.sim
            .as_deref()
            .expect("this machine runs the simulated backend")
    }

    pub fn tap(&self, product: usize) {
        assert!(self.inputs.send(Input::Tap(product)));
    }

    pub fn send(&self, input: Input) {
        assert!(self.inputs.send(input));
    }

    /// Waits (in virtual time) until the view matches, or panics after `limit`.
    pub async fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&View) -> bool,
    ) -> View {
        let fut = async {
            loop {
                {
                    let v = self.views.borrow_and_update();
                    if pred(&v) {
                        return v.clone();
                    }
                }
                self.views.changed().await.expect("controller alive");
            }
        };
        match tokio::time::timeout(limit, fut).await {
            Ok(v) => v,
            Err(_) => panic!(
                "timed out waiting for {what}; view: {:?}",
                self.views.borrow()
            ),
        }
    }

    pub fn screen(&self) -> Screen {
        self.views.borrow().screen
    }

    /// Waits for a screen for at most `limit` (real or virtual time).
    pub async fn wait_screen_within(&mut self, screen: Screen, limit: Duration) -> View {
        self.wait_for(limit, &format!("{screen:?}"), |v| v.screen == screen)
            .await
    }

    pub async fn wait_screen(&mut self, screen: Screen) -> View {
        self.wait_for(Duration::from_secs(60), &format!("{screen:?}"), |v| {
            v.screen == screen
        })
        .await
    }

    /// Ends the controller as a crash or `kill -9` would: its task is dropped where it is,
    /// nothing more is recorded (only the pump is switched off, as the drop guard does).
    #[allow(dead_code)]
    pub async fn crash(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// Stops the controller and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("controller task");
        }
    }
}

/// Total time `pin` was on, and how many times it went on.
pub fn on_time(gpio: &MockGpio, pin: u8) -> (Duration, usize) {
    let spans = gpio.high_intervals(pin);
    (spans.iter().map(|(a, b)| *b - *a).sum(), spans.len())
}

/// The test config with 300 ms pours, for tests under real time (a real payment backend).
pub fn short_pour_config(data_dir: &Path, extra: &str) -> Config {
    let text = config_text(data_dir, extra)
        .replace("pour_ms = 4000", "pour_ms = 300")
        .replace("pour_ms = 2500", "pour_ms = 300");
    Config::parse(&text, "test.toml", Mode::Sim).expect("test config")
}

/// Pays for Cola, makes the pump fail half-way, and puts the machine back in service (as
/// the operator would after fixing the pump); returns the receipt code the fault screen
/// showed.
pub async fn failed_pour(m: &mut TestMachine) -> String {
    use lnvend::vend::Event;
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    m.gpio.inject_fault(true);
    let fault = m.wait_screen(Screen::Fault).await;
    m.gpio.inject_fault(false);
    m.send(Input::DismissFault);
    m.wait_screen(Screen::OutOfService).await;
    m.send(Input::Event(Event::ServiceRestored));
    m.wait_screen(Screen::Idle).await;
    fault.code
}

/// The operator opens the menu with the simulator's PIN (examples/sim.toml holds its hash).
pub async fn login(m: &mut TestMachine) -> View {
    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    m.send(Input::OperatorPin("1234".into()));
    m.wait_screen(Screen::Operator).await
}

/// The operator refills product `index` (its tank ran dry) and leaves the menu; returns the
/// idle screen once it offers the credit the dry tank held back as pourable again.
pub async fn refill_for_credit(m: &mut TestMachine, index: usize) -> View {
    use lnvend::controller::OpAction;
    login(m).await;
    m.send(Input::Operator(OpAction::Refill { index }));
    m.wait_for(Duration::from_secs(5), "the refill", |v| {
        v.operator
            .as_ref()
            .is_some_and(|o| o.message.contains("refilled"))
    })
    .await;
    m.send(Input::Operator(OpAction::Exit));
    m.wait_for(Duration::from_secs(5), "the credit", |v| {
        v.screen == Screen::Idle && v.credits.first().is_some_and(|c| !c.sold_out)
    })
    .await
}
