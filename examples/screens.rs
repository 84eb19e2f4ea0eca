//! Draws every screen of the touchscreen to a PNG at the panel's 800x480, with slint's own
//! software renderer (the renderer the Pi uses), no display server needed:
//! `cargo run --example screens -- docs/screens` (or `scripts/screens`). The views are
//! `lnvend::ui::samples`, the same ones the language tests check: every customer screen in
//! every language (docs/screens/<language>/), the operator tabs and the keypad.
//!
//! `--idle CONFIG.toml OUT.png` draws instead the one idle screen that a config puts on the
//! touchscreen first. scripts/appliance-test compares it with a QMP screendump of the booted
//! appliance for the same config (structure, not pixels: the two machines' fonts may
//! differ). Its view is the one the controller itself starts from (`Controller::new` for the
//! config's settings), drawn by the same `MachineWindow` and `ui::render` as `lnvend run`;
//! nothing of the config's backend or GPIO is opened: a mock pump and the simulated backend
//! stand in, since the idle screen shows neither.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Context;
use lnvend::backend::sim::SimBackend;
use lnvend::config::{Config, Mode};
use lnvend::controller::{Controller, View};
use lnvend::ledger::Ledger;
use lnvend::pump::mock::MockGpio;
use lnvend::pump::{L298n, Pump};
use lnvend::ui::{self, samples, MachineWindow};
use slint::platform::software_renderer::{MinimalSoftwareWindow, RepaintBufferType};
use slint::platform::{PointerEventButton, WindowAdapter, WindowEvent};
use slint::{ComponentHandle, LogicalPosition, PhysicalSize, Rgb8Pixel};

const W: u32 = 800;
const H: u32 = 480;

struct Headless(Rc<MinimalSoftwareWindow>);

impl slint::platform::Platform for Headless {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, slint::PlatformError> {
        Ok(self.0.clone())
    }
}

fn write_png(path: &Path, buf: &[Rgb8Pixel], w: u32, h: u32) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let bytes: Vec<u8> = buf.iter().flat_map(|p| [p.r, p.g, p.b]).collect();
    enc.write_header()?.write_image_data(&bytes)?;
    Ok(())
}

/// Four screens at half size on one 800x480 sheet, for looking over many at once.
fn write_sheet(path: &Path, shots: &[Vec<Rgb8Pixel>]) -> anyhow::Result<()> {
    let mut sheet = vec![
        Rgb8Pixel {
            r: 255,
            g: 255,
            b: 255
        };
        (W * H) as usize
    ];
    for (k, shot) in shots.iter().enumerate().take(4) {
        let (ox, oy) = ((k as u32 % 2) * W / 2, (k as u32 / 2) * H / 2);
        for y in 0..H / 2 {
            for x in 0..W / 2 {
                let p = shot[((2 * y) * W + 2 * x) as usize];
                sheet[((oy + y) * W + ox + x) as usize] = p;
            }
        }
    }
    write_png(path, &sheet, W, H)
}

fn draw(adapter: &MinimalSoftwareWindow, path: &Path) -> anyhow::Result<Vec<Rgb8Pixel>> {
    let mut last = Vec::new();
    // Let layouts, timers and the first frame of every animation settle.
    for _ in 0..3 {
        slint::platform::update_timers_and_animations();
        adapter.request_redraw();
        let mut buf = vec![Rgb8Pixel { r: 0, g: 0, b: 0 }; (W * H) as usize];
        adapter.draw_if_needed(|r| {
            r.render(&mut buf, W as usize);
        });
        last = buf;
    }
    write_png(path, &last, W, H)?;
    Ok(last)
}

fn tap(window: &MachineWindow, x: f32, y: f32) {
    let position = LogicalPosition::new(x, y);
    let w = window.window();
    w.dispatch_event(WindowEvent::PointerPressed {
        position,
        button: PointerEventButton::Left,
    });
    w.dispatch_event(WindowEvent::PointerReleased {
        position,
        button: PointerEventButton::Left,
    });
    w.dispatch_event(WindowEvent::PointerExited);
}

/// The view a config's machine starts from, as `lnvend run` reads the config (one that the
/// machine would refuse is refused here too).
fn idle_view(config: &Path) -> anyhow::Result<View> {
    let config = Config::load(config, Mode::Run)
        .with_context(|| format!("cannot load {}", config.display()))?;
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
    Ok(view)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let idle = match args.as_slice() {
        [flag, config, out] if flag == "--idle" => Some((idle_view(Path::new(config))?, out)),
        [flag, ..] if flag == "--idle" => {
            anyhow::bail!("usage: screens --idle CONFIG.toml OUT.png")
        }
        _ => None,
    };
    let adapter = MinimalSoftwareWindow::new(RepaintBufferType::NewBuffer);
    adapter.set_size(PhysicalSize::new(W, H));
    slint::platform::set_platform(Box::new(Headless(adapter.clone())))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let window = MachineWindow::new()?;
    window.show()?;
    if let Some((view, out)) = idle {
        ui::render_cached(&window, &view);
        draw(&adapter, Path::new(out)).with_context(|| format!("cannot write {out}"))?;
        println!("{out}");
        return Ok(());
    }
    let dir = PathBuf::from(args.first().cloned().unwrap_or("docs/screens".into()));
    std::fs::create_dir_all(&dir)?;
    let mut written = Vec::new();
    // Customer screens in every language, each in docs/screens/<language>/.
    // With LNVEND_SHEETS=<dir>: contact sheets of four, for a person to look them over.
    let sheets = std::env::var_os("LNVEND_SHEETS").map(PathBuf::from);
    for lang in lnvend::config::LANGUAGES {
        std::fs::create_dir_all(dir.join(lang))?;
        let mut shots = Vec::new();
        for (name, view) in samples::customer_screens() {
            ui::render_cached(&window, &view);
            // As if the customer had picked it (the render sets the default at idle).
            ui::language::select(&window, lang);
            let path = dir.join(lang).join(format!("{name}.png"));
            shots.push(draw(&adapter, &path)?);
            written.push(path);
        }
        if let Some(sheets) = &sheets {
            std::fs::create_dir_all(sheets)?;
            for (k, four) in shots.chunks(4).enumerate() {
                write_sheet(&sheets.join(format!("{lang}-{k}.png")), four)?;
            }
        }
    }
    // The language picker, opened by its button left of the operator corner.
    ui::render_cached(
        &window,
        &samples::blank(lnvend::controller::Screen::ThankYou),
    );
    ui::render_cached(&window, &samples::customer_screens()[0].1);
    tap(&window, 645.0, 40.0);
    let path = dir.join("en").join("idle-languages.png");
    draw(&adapter, &path)?;
    written.push(path);
    tap(&window, 400.0, 20.0); // Outside the list: closed again.
    ui::language::select(&window, "en");
    for (name, view) in samples::operator_screens() {
        ui::render_cached(&window, &view);
        let path = dir.join(format!("{name}.png"));
        draw(&adapter, &path)?;
        written.push(path);
        if name == "operator-products" {
            // The keypad over the first product's price button.
            tap(&window, 272.0, 142.0);
            // "2", then "1" (see ui/keypad.slint's grid).
            tap(&window, 654.0, 158.0);
            tap(&window, 570.0, 158.0);
            let path = dir.join("operator-keypad.png");
            draw(&adapter, &path)?;
            written.push(path);
            tap(&window, 144.0, 394.0); // Cancel: the next tab without the keypad.
        }
    }
    for p in written {
        println!("{}", p.display());
    }
    Ok(())
}
