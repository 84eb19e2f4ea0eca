//! The touchscreen: the slint windows of `ui/` and their adapters. Each view of the machine
//! has its own slint global (ui/screens/*.slint, ui/operator.slint, ui/sim_panel.slint) and
//! its own adapter here with a `connect()` that turns the taps into controller [`Input`]s
//! and a render of its part of the [`View`]. This module owns the window-level part (which
//! screen is up), the one [`render`] entry point and the render cache. The slint event loop
//! runs on the main thread; views arrive from the tokio side through
//! `upgrade_in_event_loop`, so the screen never waits on IO.
//!
//! [`Input`]: crate::controller::Input

use std::cell::RefCell;
use std::sync::Arc;

use slint::{ComponentHandle, Image, Rgb8Pixel, SharedPixelBuffer};
use tokio::sync::watch;

use crate::controller::{Inputs, Screen as ViewScreen, View};
use crate::qr::QrBitmap;

pub mod card;
pub mod customer;
pub mod language;
pub mod operator;
pub mod samples;
pub mod sim_cards;
pub mod sim_panel;
pub mod words;

slint::include_modules!();

pub use customer::countdown_text;

/// The QR bitmaps last turned into slint images, so a countdown tick does not copy them
/// again. Each slot holds the `Arc` it was made from: a bitmap is only "the same" while
/// this cache keeps it alive, so a freed bitmap's address reused by a new one cannot bring
/// back the old image.
#[derive(Default)]
pub struct RenderCache {
    qr: QrSlot,
    refund_qr: QrSlot,
    op_refund_qr: QrSlot,
    /// Bitmaps converted so far, for the tests.
    conversions: u64,
    /// The screen of the last view, to tell when a sale is over (see [`language`]).
    last_screen: Option<ViewScreen>,
    /// The product pictures turned into slint images, each once (only those of the last
    /// view are kept, so a changed catalog cannot grow this).
    pictures: Vec<(Arc<crate::picture::Picture>, Image)>,
    /// Pictures converted so far, for the tests.
    picture_conversions: u64,
}

type QrSlot = Option<(Arc<QrBitmap>, Image)>;

impl RenderCache {
    /// The image for `bmp`, from `slot` when it is the same bitmap; `None` clears the slot.
    /// Returns `None` when nothing needs to be set (no bitmap before, none now).
    fn image(
        slot: &mut QrSlot,
        conversions: &mut u64,
        bmp: Option<&Arc<QrBitmap>>,
    ) -> Option<Image> {
        match bmp {
            Some(bmp) => Some(match slot {
                Some((held, img)) if Arc::ptr_eq(held, bmp) => img.clone(),
                _ => {
                    let img = qr_image(bmp);
                    *conversions += 1;
                    *slot = Some((bmp.clone(), img.clone()));
                    img
                }
            }),
            None => slot.take().map(|_| Image::default()),
        }
    }

    fn qr(&mut self, bmp: Option<&Arc<QrBitmap>>) -> Option<Image> {
        Self::image(&mut self.qr, &mut self.conversions, bmp)
    }

    fn refund_qr(&mut self, bmp: Option<&Arc<QrBitmap>>) -> Option<Image> {
        Self::image(&mut self.refund_qr, &mut self.conversions, bmp)
    }

    fn op_refund_qr(&mut self, bmp: Option<&Arc<QrBitmap>>) -> Option<Image> {
        Self::image(&mut self.op_refund_qr, &mut self.conversions, bmp)
    }

    /// The slint images of `pics` (an empty image for `None`), each converted only once.
    pub(crate) fn pictures(
        &mut self,
        pics: &[Option<&Arc<crate::picture::Picture>>],
    ) -> Vec<Image> {
        let mut kept = Vec::new();
        let images = pics
            .iter()
            .map(|p| {
                let Some(p) = p else {
                    return Image::default();
                };
                let same =
                    |(held, _): &&(Arc<crate::picture::Picture>, Image)| Arc::ptr_eq(held, p);
                if let Some((_, img)) = kept.iter().find(same) {
                    return img.clone();
                }
                let img = match self.pictures.iter().find(same) {
                    Some((_, img)) => img.clone(),
                    None => {
                        self.picture_conversions += 1;
                        picture_image(p)
                    }
                };
                kept.push(((*p).clone(), img.clone()));
                img
            })
            .collect();
        self.pictures = kept;
        images
    }
}

fn picture_image(p: &crate::picture::Picture) -> Image {
    let buf = SharedPixelBuffer::<slint::Rgba8Pixel>::clone_from_slice(
        &p.rgba_premultiplied,
        p.width,
        p.height,
    );
    Image::from_rgba8_premultiplied(buf)
}

fn qr_image(bmp: &QrBitmap) -> Image {
    let mut buf = SharedPixelBuffer::<Rgb8Pixel>::new(bmp.size, bmp.size);
    for (px, &l) in buf.make_mut_slice().iter_mut().zip(bmp.pixels.iter()) {
        *px = Rgb8Pixel { r: l, g: l, b: l };
    }
    Image::from_rgb8(buf)
}

/// A window that shows the machine's screen: the kiosk window or the simulator. One
/// accessor per global, so the adapters are written once for both windows.
pub trait MachineUi: ComponentHandle + 'static {
    fn machine(&self) -> Machine<'_>;
    fn idle(&self) -> Idle<'_>;
    fn creating(&self) -> Creating<'_>;
    fn payment(&self) -> Payment<'_>;
    fn pouring(&self) -> Pouring<'_>;
    fn thanks(&self) -> Thanks<'_>;
    fn out_of_service(&self) -> OutOfService<'_>;
    fn fault(&self) -> Fault<'_>;
    fn pin_pad(&self) -> PinPad<'_>;
    fn operator(&self) -> Operator<'_>;
    fn card(&self) -> Card<'_>;
    fn card_pin(&self) -> CardPin<'_>;
}

macro_rules! machine_ui {
    ($window:ty) => {
        impl MachineUi for $window {
            fn machine(&self) -> Machine<'_> {
                self.global()
            }
            fn idle(&self) -> Idle<'_> {
                self.global()
            }
            fn creating(&self) -> Creating<'_> {
                self.global()
            }
            fn payment(&self) -> Payment<'_> {
                self.global()
            }
            fn pouring(&self) -> Pouring<'_> {
                self.global()
            }
            fn thanks(&self) -> Thanks<'_> {
                self.global()
            }
            fn out_of_service(&self) -> OutOfService<'_> {
                self.global()
            }
            fn fault(&self) -> Fault<'_> {
                self.global()
            }
            fn pin_pad(&self) -> PinPad<'_> {
                self.global()
            }
            fn operator(&self) -> Operator<'_> {
                self.global()
            }
            fn card(&self) -> Card<'_> {
                self.global()
            }
            fn card_pin(&self) -> CardPin<'_> {
                self.global()
            }
        }
    };
}

machine_ui!(MachineWindow);
machine_ui!(SimWindow);

fn screen(s: ViewScreen) -> Screen {
    match s {
        // The expiry notice is drawn over the idle screen (see ui/screens/idle.slint).
        ViewScreen::Idle | ViewScreen::Expired => Screen::Idle,
        ViewScreen::Creating => Screen::Creating,
        ViewScreen::Payment => Screen::Payment,
        ViewScreen::Pouring => Screen::Pouring,
        ViewScreen::ThankYou => Screen::Thanks,
        ViewScreen::OutOfService => Screen::OutOfService,
        ViewScreen::Fault => Screen::Fault,
        ViewScreen::Pin => Screen::Pin,
        ViewScreen::Operator => Screen::Operator,
    }
}

/// The single function that maps the view onto the UI.
pub fn render<W: MachineUi>(window: &W, view: &View, cache: &mut RenderCache) {
    if language::back_to_default(cache.last_screen, view.screen) {
        language::select(window, &view.language);
    }
    cache.last_screen = Some(view.screen);
    let m = window.machine();
    m.set_screen(screen(view.screen));
    m.set_machine_id(view.machine_id.as_str().into());
    customer::render(window, view, cache);
    if let Some(op) = &view.operator {
        operator::render(&window.operator(), op, cache);
    }
}

/// Wires the window to the controller: taps go out as inputs, views come in and are rendered.
pub fn attach<W: MachineUi>(
    window: &W,
    inputs: Inputs,
    mut views: watch::Receiver<View>,
    rt: &tokio::runtime::Handle,
) {
    customer::connect(window, &inputs);
    operator::connect(&window.operator(), &inputs);
    drop(inputs);

    render_cached(window, &views.borrow_and_update());

    let weak = window.as_weak();
    rt.spawn(async move {
        while views.changed().await.is_ok() {
            let view = views.borrow_and_update().clone();
            if weak
                .upgrade_in_event_loop(move |w| render_cached(&w, &view))
                .is_err()
            {
                break;
            }
        }
    });
}

thread_local! {
    // The render cache belongs to the UI thread, like the window.
    static CACHE: RefCell<RenderCache> = RefCell::new(RenderCache::default());
}

/// [`render`] with the UI thread's cache.
pub fn render_cached<W: MachineUi>(window: &W, view: &View) {
    CACHE.with(|c| render(window, view, &mut c.borrow_mut()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitmap(size: u32, level: u8) -> Arc<QrBitmap> {
        Arc::new(QrBitmap {
            size,
            pixels: vec![level; (size * size) as usize],
        })
    }

    fn first_pixel(img: &Image) -> u8 {
        img.to_rgb8().expect("an RGB image").as_slice()[0].r
    }

    #[test]
    fn a_new_qr_at_a_freed_qrs_address_shows_the_new_code() {
        let mut cache = RenderCache::default();
        // Many rounds: the allocator reuses a just-freed block of the same size at once,
        // which is exactly when an address-only cache would show the previous invoice.
        for round in 0..50u8 {
            let level = if round % 2 == 0 { 0 } else { 255 };
            let bmp = bitmap(8, level);
            let img = cache.qr(Some(&bmp)).expect("an image to show");
            assert_eq!(first_pixel(&img), level, "round {round}");
            drop(bmp);
        }
    }

    #[test]
    fn a_product_picture_is_converted_once_and_dropped_with_its_product() {
        let pic = |c: u8| {
            Arc::new(crate::picture::Picture {
                width: 2,
                height: 1,
                rgba_premultiplied: vec![c, 0, 0, 255, c, 0, 0, 255],
            })
        };
        let (cola, mate) = (pic(200), pic(100));
        let mut cache = RenderCache::default();
        for _ in 0..5 {
            let imgs = cache.pictures(&[Some(&cola), None, Some(&mate), Some(&cola)]);
            assert_eq!(imgs.len(), 4);
            assert_eq!((imgs[0].size().width, imgs[0].size().height), (2, 1));
            assert_eq!(imgs[1].size().width, 0, "no picture");
        }
        assert_eq!(
            cache.picture_conversions, 2,
            "each picture once, not per tick"
        );
        cache.pictures(&[Some(&mate)]);
        assert_eq!(
            cache.pictures.len(),
            1,
            "a picture no longer shown is let go"
        );
    }

    #[test]
    fn the_same_qr_is_converted_once_and_cleared_when_gone() {
        let mut cache = RenderCache::default();
        let bmp = bitmap(8, 0);
        assert!(cache.qr(Some(&bmp)).is_some());
        assert!(cache.qr(Some(&bmp)).is_some());
        assert_eq!(
            cache.conversions, 1,
            "a countdown tick does not convert again"
        );
        assert!(cache.qr(None).is_some(), "the old QR is cleared once");
        assert!(cache.qr(None).is_none(), "and then left alone");
    }

    fn view(screen: ViewScreen) -> View {
        samples::blank(screen)
    }

    #[test]
    fn the_operator_refund_qr_is_converted_once_and_follows_a_new_refund() {
        i_slint_backend_testing::init_no_event_loop();
        let window = MachineWindow::new().unwrap();
        let mut cache = RenderCache::default();
        let first = bitmap(8, 0);
        let mut v = view(ViewScreen::Operator);
        v.operator = Some(crate::controller::OperatorView {
            refund_qr: Some(first.clone()),
            refund_text: "Refund claim".into(),
            ..Default::default()
        });
        render(&window, &v, &mut cache);
        // The menu's view changes every tick (the status lines); the QR must not be redone.
        render(&window, &v, &mut cache);
        render(&window, &v, &mut cache);
        assert_eq!(cache.conversions, 1);
        assert_eq!(first_pixel(&window.operator().get_refund_qr()), 0);

        if let Some(op) = v.operator.as_mut() {
            op.refund_qr = Some(bitmap(8, 255));
        }
        render(&window, &v, &mut cache);
        assert_eq!(cache.conversions, 2);
        assert_eq!(first_pixel(&window.operator().get_refund_qr()), 255);

        if let Some(op) = v.operator.as_mut() {
            op.refund_qr = None;
            op.refund_text.clear();
        }
        render(&window, &v, &mut cache);
        assert!(
            window.operator().get_refund_qr().to_rgb8().is_none(),
            "a closed refund leaves no QR behind"
        );
    }
}
