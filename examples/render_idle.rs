//! Draws the idle screen that one config file puts on the touchscreen first, to a PNG at the
//! panel's 800x480, with slint's software renderer and no display:
//! `cargo run --example render_idle -- CONFIG.toml OUT.png`.
//!
//! It exists for scripts/appliance-test, which compares a QMP screendump of the booted
//! appliance with what the host draws for the same config (structure, not pixels: the two
//! machines' fonts may differ). The view is the one the controller itself starts from
//! (`Controller::new` for the config's settings), drawn by the same `MachineWindow` and
//! `ui::render` as `lnvend run`; nothing of the config's backend or GPIO is opened, a mock
//! pump and the simulated backend stand in, since the idle screen shows neither.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Context;
use lnvend::backend::sim::SimBackend;
use lnvend::config::{Config, Mode};
use lnvend::controller::Controller;
use lnvend::ledger::Ledger;
use lnvend::pump::mock::MockGpio;
use lnvend::pump::{L298n, Pump};
use lnvend::ui::{self, MachineWindow};
use slint::platform::software_renderer::{MinimalSoftwareWindow, RepaintBufferType};
use slint::platform::WindowAdapter;
use slint::{ComponentHandle, PhysicalSize, Rgb8Pixel};

const W: u32 = 800;
const H: u32 = 480;

struct Headless(Rc<MinimalSoftwareWindow>);

impl slint::platform::Platform for Headless {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, slint::PlatformError> {
        Ok(self.0.clone())
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(config), Some(out)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: render_idle CONFIG.toml OUT.png");
    };
    // As `lnvend run` reads it: a config that the machine would refuse is refused here too.
    let config = Config::load(&PathBuf::from(&config), Mode::Run)
        .with_context(|| format!("cannot load {config}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _in_runtime = rt.enter();
    let gpio = MockGpio::new(None)?;
    let (a, b) = config.bridge_pins();
    let pump = Pump::new(L298n::new(Box::new(gpio.pins()), a, b), config.max_run())?;
    let ledger_dir = tempfile::tempdir()?;
    let controller = Controller::new(
        lnvend::app::settings(&config),
        Arc::new(SimBackend::new()),
        pump,
        Ledger::open(ledger_dir.path()),
    );
    let view = controller.views().borrow().clone();

    let adapter = MinimalSoftwareWindow::new(RepaintBufferType::NewBuffer);
    adapter.set_size(PhysicalSize::new(W, H));
    slint::platform::set_platform(Box::new(Headless(adapter.clone())))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let window = MachineWindow::new()?;
    window.show()?;
    ui::render_cached(&window, &view);
    let mut buf = vec![Rgb8Pixel { r: 0, g: 0, b: 0 }; (W * H) as usize];
    // A few frames, so layouts and the first frame of any animation settle.
    for _ in 0..3 {
        slint::platform::update_timers_and_animations();
        adapter.request_redraw();
        adapter.draw_if_needed(|r| {
            r.render(&mut buf, W as usize);
        });
    }
    let file = std::fs::File::create(&out).with_context(|| format!("cannot write {out}"))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), W, H);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let bytes: Vec<u8> = buf.iter().flat_map(|p| [p.r, p.g, p.b]).collect();
    enc.write_header()?.write_image_data(&bytes)?;
    println!("{out}");
    Ok(())
}
