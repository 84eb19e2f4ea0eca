//! The CPU-bound figures alone, no machine and no backend (`./scripts/bench --cpu`): what a
//! change of compiler settings (the release profile's LTO and per-crate `opt-level`, see
//! Cargo.toml and docs/developer/benchmarks.md) can make slower. A BOLT11 signature check, a
//! QR encode, full 800x480 software frames of the two busiest screens (the product tiles with
//! their pictures, the payment screen with its QR; their first frame, whose glyphs are drawn
//! for the first time, apart), and a product picture's decode and scale at config load (SVG,
//! PNG, JPEG).

use std::io::Cursor;
use std::time::Instant;

use lnvend::controller::QR_PX;

use super::{crypto_rows, ms, row, sim_bolt11, Opts, Row, Screen2};

/// `--cpu`: the rows above, in one table. Creates the process's one slint platform.
pub fn cpu_main(o: &Opts) -> Vec<Row> {
    let mut rows = Vec::new();
    let bolt11 = sim_bolt11();
    crypto_rows(o, &bolt11, &mut rows);
    let uri = lnvend::qr::payment_uri(&bolt11);
    let mut qr = Vec::new();
    for _ in 0..if o.full { 500 } else { 20 } {
        let t = Instant::now();
        std::hint::black_box(lnvend::qr::render(&uri, QR_PX).unwrap());
        qr.push(ms(t.elapsed()));
    }
    rows.push(row("QR encode + rasterise (qr::render)", &qr, "", None));
    let mut screen = Screen2::new();
    first_frame_rows(&mut screen, &mut rows);
    frame_rows(o, &mut screen, &mut rows);
    picture_rows(o, &mut rows);
    rows
}

/// A customer screen from `ui::samples`, by its name.
fn sample_view(name: &str) -> lnvend::controller::View {
    lnvend::ui::samples::customer_screens()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("sample screen {name}"))
}

/// The first frames in this process, whose glyphs are drawn for the first time (the
/// text-shaping and font crates, optimised for size, fill the renderer's glyph cache): the
/// window's creation and its first frame (the empty idle screen: fonts loaded, the heading
/// drawn), then the first frame of the product tiles and of the payment screen (only their
/// glyphs not drawn before are new). One sample each per run: run `--cpu` several times to
/// compare builds.
fn first_frame_rows(screen: &mut Screen2, rows: &mut Vec<Row>) {
    let start = ms(screen.start);
    let tiles = ms(screen.show(&sample_view("idle")));
    let pay = ms(screen.show(&sample_view("payment")));
    for (what, v) in [
        ("window created + first frame (fonts, heading)", start),
        ("first product-tiles frame after it", tiles),
        ("first payment-screen frame after that", pay),
    ] {
        rows.push(row(what, &[v], "", None));
    }
}

/// ui::render and one full frame of the product screen, then of the payment screen, in
/// turn (so each frame is a screen change, drawn whole).
pub fn frame_rows(o: &Opts, screen: &mut Screen2, rows: &mut Vec<Row>) {
    let (idle, payment) = (sample_view("idle"), sample_view("payment"));
    assert!(payment.qr.is_some(), "the payment sample carries a QR");
    let (mut tiles, mut pay) = (Vec::new(), Vec::new());
    for _ in 0..if o.full { 300 } else { 5 } {
        tiles.push(ms(screen.show(&idle)));
        pay.push(ms(screen.show(&payment)));
    }
    rows.push(row(
        "ui::render + full frame, product tiles (3 pictures)",
        &tiles,
        "",
        None,
    ));
    rows.push(row(
        "ui::render + full frame, payment screen (QR)",
        &pay,
        "",
        None,
    ));
}

/// A product picture read at config load: decoded and scaled to the tile's 240 px.
pub fn picture_rows(o: &Opts, rows: &mut Vec<Row>) {
    let svg = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/pictures/cola.svg"
    ))
    .expect("examples/pictures/cola.svg");
    // A synthetic 1024x1024 picture (two ramps and an XOR pattern), the size of a photo an
    // operator might copy from a camera. A decode's time depends on the content, so these
    // rows compare builds with each other, not with any particular photo.
    let img = image::RgbImage::from_fn(1024, 1024, |x, y| {
        image::Rgb([(x / 4) as u8, (y / 4) as u8, ((x ^ y) & 0xff) as u8])
    });
    let encoded = |format| {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format)
            .expect("encode a test picture");
        out.into_inner()
    };
    let png = encoded(image::ImageFormat::Png);
    let jpeg = encoded(image::ImageFormat::Jpeg);
    let n = if o.full { 30 } else { 2 };
    for (what, bytes, is_svg) in [
        ("picture decode + scale, SVG (cola.svg)", &svg, true),
        ("picture decode + scale, PNG 1024x1024", &png, false),
        ("picture decode + scale, JPEG 1024x1024", &jpeg, false),
    ] {
        let mut times = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let p = lnvend::picture::decode(bytes, is_svg).expect("the test picture decodes");
            times.push(ms(t.elapsed()));
            assert!(p.width <= lnvend::picture::MAX_PX && p.height <= lnvend::picture::MAX_PX);
        }
        rows.push(row(what, &times, "", None));
    }
}
