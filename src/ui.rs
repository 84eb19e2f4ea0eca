//! The touchscreen: maps a [`View`] onto the `Machine` global of `ui/machine.slint` (one
//! render function) and turns the customer's taps into controller [`Input`]s. The slint
//! event loop runs on the main thread; views arrive from the tokio side through
//! `upgrade_in_event_loop`, so the screen never waits on IO.

use std::cell::RefCell;

use slint::{
    ComponentHandle, Image, Model, ModelRc, Rgb8Pixel, SharedPixelBuffer, SharedString, VecModel,
};
use tokio::sync::watch;

use crate::controller::{Input, Inputs, Screen as ViewScreen, View};
use crate::qr::QrBitmap;

slint::include_modules!();

/// The last QR turned into a slint image, so a countdown tick does not copy it again.
#[derive(Default)]
pub struct RenderCache {
    qr: Option<(*const QrBitmap, Image)>,
}

fn qr_image(bmp: &QrBitmap) -> Image {
    let mut buf = SharedPixelBuffer::<Rgb8Pixel>::new(bmp.size, bmp.size);
    for (px, &l) in buf.make_mut_slice().iter_mut().zip(bmp.pixels.iter()) {
        *px = Rgb8Pixel { r: l, g: l, b: l };
    }
    Image::from_rgb8(buf)
}

/// "4:59"
pub fn countdown_text(seconds: u64) -> String {
    format!("Expires in {}:{:02}", seconds / 60, seconds % 60)
}

fn strings(v: &[String]) -> ModelRc<SharedString> {
    ModelRc::new(VecModel::from(
        v.iter()
            .map(|s| SharedString::from(s.as_str()))
            .collect::<Vec<_>>(),
    ))
}

fn render_operator(
    m: &Machine<'_>,
    op: Option<&crate::controller::OperatorView>,
    cache: &mut RenderCache,
) {
    use crate::controller::OpTab;
    let Some(op) = op else {
        return;
    };
    m.set_op_tab(match op.tab {
        OpTab::Products => 0,
        OpTab::Pump => 1,
        OpTab::Sales => 2,
        OpTab::Credits => 3,
        OpTab::Status => 4,
    });
    let products: Vec<OpProductRow> = op
        .products
        .iter()
        .map(|p| OpProductRow {
            name: p.name.as_str().into(),
            price: p.price.as_str().into(),
            pour: p.pour.as_str().into(),
        })
        .collect();
    m.set_op_products(ModelRc::new(VecModel::from(products)));
    m.set_op_unsaved(op.unsaved);
    m.set_op_today(op.today.as_str().into());
    m.set_op_total(op.total.as_str().into());
    m.set_op_recent(strings(&op.recent));
    let credits: Vec<OpCreditRow> = op
        .credits
        .iter()
        .map(|c| OpCreditRow {
            sale_id: c.sale_id.as_str().into(),
            text: c.text.as_str().into(),
        })
        .collect();
    m.set_op_credits(ModelRc::new(VecModel::from(credits)));
    m.set_op_status(strings(&op.status));
    m.set_op_message(op.message.as_str().into());
    m.set_op_refund_text(op.refund_text.as_str().into());
    m.set_op_refund_qr(match &op.refund_qr {
        Some(bmp) => qr_image(bmp),
        None => Image::default(),
    });
    let _ = cache;
}

/// A window that shows the machine's screen: the kiosk window or the simulator.
pub trait MachineUi: ComponentHandle + 'static {
    fn machine(&self) -> Machine<'_>;
}

impl MachineUi for MachineWindow {
    fn machine(&self) -> Machine<'_> {
        self.global::<Machine>()
    }
}

impl MachineUi for SimWindow {
    fn machine(&self) -> Machine<'_> {
        self.global::<Machine>()
    }
}

/// The single function that maps the view onto the UI.
pub fn render(m: &Machine<'_>, view: &View, cache: &mut RenderCache) {
    m.set_screen(match view.screen {
        ViewScreen::Idle => Screen::Idle,
        ViewScreen::Creating => Screen::Creating,
        ViewScreen::Payment => Screen::Payment,
        ViewScreen::Pouring => Screen::Pouring,
        ViewScreen::ThankYou => Screen::Thanks,
        ViewScreen::OutOfService => Screen::OutOfService,
        ViewScreen::Fault => Screen::Fault,
        ViewScreen::Pin => Screen::Pin,
        ViewScreen::Operator => Screen::Operator,
    });
    let credits: Vec<CreditTile> = view
        .credits
        .iter()
        .map(|c| CreditTile {
            sale_id: c.sale_id.as_str().into(),
            product: c.product.as_str().into(),
        })
        .collect();
    m.set_credits(ModelRc::new(VecModel::from(credits)));
    m.set_pin_message(view.pin_message.as_str().into());
    m.set_fault_refund(view.fault_refund);
    m.set_refund_text(view.refund_text.as_str().into());
    m.set_refund_qr(match &view.refund_qr {
        Some(bmp) => qr_image(bmp),
        None => Image::default(),
    });
    render_operator(m, view.operator.as_ref(), cache);
    m.set_machine_id(view.machine_id.as_str().into());
    let tiles: Vec<ProductTile> = view
        .tiles
        .iter()
        .map(|t| ProductTile {
            name: SharedString::from(t.name.as_str()),
            price: SharedString::from(t.price.as_str()),
        })
        .collect();
    let current = m.get_products();
    let same = current.row_count() == tiles.len()
        && tiles
            .iter()
            .enumerate()
            .all(|(i, t)| current.row_data(i).as_ref() == Some(t));
    if !same {
        m.set_products(ModelRc::new(VecModel::from(tiles)));
    }
    m.set_product(view.product.as_str().into());
    m.set_amount(view.amount.as_str().into());
    match &view.qr {
        Some(bmp) => {
            let ptr = std::sync::Arc::as_ptr(bmp);
            let img = match &cache.qr {
                Some((p, img)) if *p == ptr => img.clone(),
                _ => {
                    let img = qr_image(bmp);
                    cache.qr = Some((ptr, img.clone()));
                    img
                }
            };
            m.set_qr(img);
        }
        None => {
            if cache.qr.take().is_some() {
                m.set_qr(Image::default());
            }
        }
    }
    m.set_countdown(countdown_text(view.seconds_left).into());
    m.set_progress(view.progress);
    m.set_message(view.message.as_str().into());
    m.set_code(view.code.as_str().into());
    m.set_detail(view.detail.as_str().into());
}

/// Wires the window to the controller: taps go out as inputs, views come in and are rendered.
pub fn attach<W: MachineUi>(
    window: &W,
    inputs: Inputs,
    mut views: watch::Receiver<View>,
    rt: &tokio::runtime::Handle,
) {
    let m = window.machine();
    let i = inputs.clone();
    m.on_tap_product(move |idx| {
        if let Ok(idx) = usize::try_from(idx) {
            i.send(Input::Tap(idx));
        }
    });
    let i = inputs.clone();
    m.on_cancel(move || {
        i.send(Input::Cancel);
    });
    let i = inputs.clone();
    m.on_dismiss(move || {
        i.send(Input::DismissFault);
    });
    let i = inputs.clone();
    m.on_refund_fault(move || {
        i.send(Input::RefundFault);
    });
    let i = inputs.clone();
    m.on_redeem_credit(move |id| {
        i.send(Input::RedeemCredit(id.to_string()));
    });
    let i = inputs.clone();
    m.on_open_operator(move || {
        i.send(Input::OpenOperator);
    });
    let i = inputs.clone();
    m.on_submit_pin(move |pin| {
        i.send(Input::OperatorPin(pin.to_string()));
    });
    let i = inputs.clone();
    m.on_op(move |action, index, on| {
        use crate::controller::{OpAction as A, OpTab};
        use crate::pump::Channel;
        let idx = usize::try_from(index).unwrap_or(usize::MAX);
        let channel = if index == 1 { Channel::B } else { Channel::A };
        let a = match action.as_str() {
            "exit" => A::Exit,
            "cancel-pin" => A::CancelPin,
            "tab" => A::Tab(match index {
                1 => OpTab::Pump,
                2 => OpTab::Sales,
                3 => OpTab::Credits,
                4 => OpTab::Status,
                _ => OpTab::Products,
            }),
            "price-up" => A::Price {
                index: idx,
                up: true,
            },
            "price-down" => A::Price {
                index: idx,
                up: false,
            },
            "pour-up" => A::Pour {
                index: idx,
                up: true,
            },
            "pour-down" => A::Pour {
                index: idx,
                up: false,
            },
            "save" => A::Save,
            "test" => A::TestPour { index: idx },
            "prime" => A::Prime { channel, on },
            "reverse" => A::Reverse { channel },
            "close-refund" => A::CloseRefund,
            other => {
                tracing::error!(action = other, "unknown operator action from the UI");
                return;
            }
        };
        i.send(Input::Operator(a));
    });
    let i = inputs.clone();
    m.on_op_credit(move |action, id| {
        use crate::controller::OpAction as A;
        let a = if action == "refund" {
            A::Refund(id.to_string())
        } else {
            A::Settle(id.to_string())
        };
        i.send(Input::Operator(a));
    });
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
    CACHE.with(|c| render(&window.machine(), view, &mut c.borrow_mut()));
}
