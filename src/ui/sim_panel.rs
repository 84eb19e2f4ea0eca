//! The simulator's control panel beside the machine's screen (`lnvend sim` only): its
//! buttons drive the simulated backend and the mock pump, and it shows the live pin levels
//! and the controller's state. It lives apart from the customer's screens so nothing of
//! the simulator is wired into the kiosk window.

use std::sync::Arc;

use slint::{ComponentHandle, ModelRc, SharedString, VecModel};

use super::{PinRow, Sim, SimWindow};
use crate::backend::sim::SimBackend;
use crate::controller::{Input, Inputs, View};
use crate::pump::mock::MockGpio;
use crate::vend::Event;

/// Wires the panel's buttons to the simulator and keeps its pins and state line live.
pub fn connect(
    panel: &SimWindow,
    inputs: Inputs,
    sim: Option<Arc<SimBackend>>,
    gpio: Option<MockGpio>,
    pin_names: Vec<(u8, String)>,
    mut views: tokio::sync::watch::Receiver<View>,
    rt: &tokio::runtime::Handle,
) {
    let g = panel.global::<Sim>();
    let weak = panel.as_weak();
    let status = move |text: String| {
        let _ = weak.upgrade_in_event_loop(move |p| p.global::<Sim>().set_status(text.into()));
    };
    let no_sim = "the payment backend is not the simulator";

    let (s, st) = (sim.clone(), status.clone());
    g.on_pay(move || match &s {
        Some(s) => match s.pay_latest() {
            Ok(id) => st(format!("paid invoice {}…", &id.0[..12.min(id.0.len())])),
            Err(e) => st(e.to_string()),
        },
        None => st(no_sim.into()),
    });
    let (s, st) = (sim.clone(), status.clone());
    g.on_expire(move || match &s {
        Some(s) => match s.expire_latest() {
            Ok(_) => st("invoice expired".into()),
            Err(e) => st(e.to_string()),
        },
        None => st(no_sim.into()),
    });
    let (s, st) = (sim.clone(), status.clone());
    g.on_drop_connection(move || match &s {
        Some(s) => {
            s.drop_connections();
            st("wake-up connections dropped; polling takes over".into());
        }
        None => st(no_sim.into()),
    });
    let (s, st, weak) = (sim.clone(), status.clone(), panel.as_weak());
    g.on_toggle_backend(move || match &s {
        Some(s) => {
            let down = !s.is_down();
            s.set_down(down);
            if let Some(p) = weak.upgrade() {
                p.global::<Sim>().set_backend_down(down);
            }
            st(if down {
                "backend switched off"
            } else {
                "backend back on"
            }
            .into());
        }
        None => st(no_sim.into()),
    });
    let (gp, st, weak) = (gpio.clone(), status.clone(), panel.as_weak());
    g.on_toggle_pump_fault(move || match &gp {
        Some(gp) => {
            let on = !gp.fault_injected();
            gp.inject_fault(on);
            if let Some(p) = weak.upgrade() {
                p.global::<Sim>().set_pump_fault(on);
            }
            st(if on {
                "the next pour will fault"
            } else {
                "pump fault cleared"
            }
            .into());
        }
        None => st("GPIO is not mocked".into()),
    });
    let (i, st) = (inputs, status);
    g.on_restore(move || {
        i.send(Input::Event(Event::ServiceRestored));
        st("operator: back in service".into());
    });

    // Live pin levels.
    if let Some(gpio) = gpio {
        let weak = panel.as_weak();
        let mut changes = gpio.subscribe();
        let show = move |gpio: &MockGpio| {
            let levels = gpio.levels();
            let rows: Vec<(String, String, bool)> = pin_names
                .iter()
                .map(|(pin, name)| {
                    let v = levels.get(pin).copied();
                    let (text, on) = match v {
                        Some(crate::pump::mock::PinValue::Level(l)) => {
                            (format!("{}", u8::from(l)), l)
                        }
                        Some(crate::pump::mock::PinValue::Duty(d)) => {
                            (format!("PWM {:.0}%", d * 100.0), d > 0.0)
                        }
                        None => ("-".into(), false),
                    };
                    (format!("{name} = BCM {pin}"), text, on)
                })
                .collect();
            let _ = weak.upgrade_in_event_loop(move |p| {
                let model: Vec<PinRow> = rows
                    .into_iter()
                    .map(|(name, level, on)| PinRow {
                        name: SharedString::from(name),
                        level: SharedString::from(level),
                        on,
                    })
                    .collect();
                p.global::<Sim>()
                    .set_pins(ModelRc::new(VecModel::from(model)));
            });
        };
        show(&gpio);
        rt.spawn(async move {
            while changes.changed().await.is_ok() {
                show(&gpio);
            }
        });
    }

    // The machine's state, for orientation.
    let weak = panel.as_weak();
    rt.spawn(async move {
        loop {
            let s = format!("{:?}", views.borrow_and_update().screen);
            if weak
                .upgrade_in_event_loop(move |p| p.global::<Sim>().set_state(s.into()))
                .is_err()
            {
                break;
            }
            if views.changed().await.is_err() {
                break;
            }
        }
    });
}

/// The simulated flow sensors: the "tank empty" switch (for all of them) and their live
/// pulse rate, sampled twice a second.
pub fn connect_flow(
    panel: &SimWindow,
    flows: Vec<crate::pump::flow_mock::MockFlow>,
    rt: &tokio::runtime::Handle,
) {
    use crate::pump::flow::FlowSensor;
    if flows.is_empty() {
        return;
    }
    let g = panel.global::<Sim>();
    g.set_has_flow(true);
    let (fl, weak) = (flows.clone(), panel.as_weak());
    g.on_toggle_tank_empty(move || {
        let empty = !fl.iter().any(|f| f.tank_empty());
        for f in &fl {
            f.set_tank_empty(empty);
        }
        if let Some(p) = weak.upgrade() {
            p.global::<Sim>().set_tank_empty(empty);
        }
    });
    let weak = panel.as_weak();
    rt.spawn(async move {
        let every = std::time::Duration::from_millis(500);
        let mut last: Vec<u64> = flows.iter().map(|f| f.counter().pulses()).collect();
        loop {
            tokio::time::sleep(every).await;
            let now: Vec<u64> = flows.iter().map(|f| f.counter().pulses()).collect();
            let text = flows
                .iter()
                .zip(now.iter().zip(&last))
                .map(|(f, (n, l))| {
                    let rate = n.saturating_sub(*l) as f64 / every.as_secs_f64();
                    format!("Flow BCM {}: {rate:.1} pulses/s, {n} in all", f.pin())
                })
                .collect::<Vec<_>>()
                .join("; ");
            last = now;
            if weak
                .upgrade_in_event_loop(move |p| p.global::<Sim>().set_flow(text.into()))
                .is_err()
            {
                break;
            }
        }
    });
}
