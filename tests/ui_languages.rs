//! Every customer screen in every language at the panel's 800x480, headless through
//! slint's testing backend with real font measurement: no text is wider or taller than its
//! box (every customer text is a `Label`, which says "text cut off" in its accessible
//! description when it is, elided text included), no text lies outside the screen, and
//! each language really is on the screen (a catalog that failed to load would leave the
//! English text, and prove nothing). Also: a language picked on the idle screen lasts for
//! the sale and is gone once the screen is back to idle (tests/ui_language_timeout.rs: or a
//! minute later when nobody buys).
//!
//! The testing backend can be initialised once per process, so this file holds one test.

use i_slint_backend_testing::{AccessibleRole, ElementHandle, ElementRoot};
use lnvend::config::LANGUAGES;
use lnvend::controller::Screen;
use lnvend::ui::{self, samples, MachineUi, MachineWindow};
use slint::platform::{PointerEventButton, WindowEvent};
use slint::{ComponentHandle, LogicalPosition};

/// What is wrong with the texts on the screen now, one line each.
fn problems(window: &MachineWindow) -> Vec<String> {
    let mut out = Vec::new();
    for e in window
        .root_element()
        .query_descendants()
        .match_accessible_role(AccessibleRole::Text)
        .find_all()
    {
        let label = e.accessible_label().unwrap_or_default();
        if label.is_empty() {
            continue;
        }
        let (p, s) = (e.absolute_position(), e.size());
        if e.accessible_description()
            .is_some_and(|d| d == "text cut off")
        {
            out.push(format!(
                "{label:?} does not fit its {}x{} box",
                s.width, s.height
            ));
        }
        if p.x < -0.5 || p.y < -0.5 || p.x + s.width > 800.5 || p.y + s.height > 480.5 {
            out.push(format!("{label:?} is off the screen at {p:?} {s:?}"));
        }
    }
    out
}

fn labelled(window: &MachineWindow, label: &str) -> usize {
    ElementHandle::find_by_accessible_label(window, label).count()
}

fn tap(window: &MachineWindow, label: &str) {
    let e: Vec<_> = ElementHandle::find_by_accessible_label(window, label)
        .filter(|e| e.accessible_role() == Some(AccessibleRole::Button))
        .collect();
    assert_eq!(e.len(), 1, "one button {label:?}");
    let (p, s) = (e[0].absolute_position(), e[0].size());
    let at = LogicalPosition::new(p.x + s.width / 2.0, p.y + s.height / 2.0);
    let w = window.window();
    w.dispatch_event(WindowEvent::PointerPressed {
        position: at,
        button: PointerEventButton::Left,
    });
    w.dispatch_event(WindowEvent::PointerReleased {
        position: at,
        button: PointerEventButton::Left,
    });
    w.dispatch_event(WindowEvent::PointerExited);
}

/// The idle screen's headline in each language, to see that the language is on the screen.
fn headline(lang: &str) -> &'static str {
    match lang {
        "fr" => "Touchez une boisson — payez en Lightning ⚡",
        "pt" => "Toque numa bebida — pague com Lightning ⚡",
        "es" => "Toque una bebida — pague con Lightning ⚡",
        "de" => "Getränk antippen — mit Lightning zahlen ⚡",
        _ => "Tap a drink — pay with Lightning ⚡",
    }
}

#[test]
fn every_customer_screen_fits_in_every_language_and_a_choice_lasts_one_sale() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let window = MachineWindow::new().unwrap();
    ui::language::connect(&window);
    window.show().unwrap();

    let mut all = Vec::new();
    for lang in LANGUAGES {
        let idle = samples::blank(Screen::Idle);
        ui::render_cached(&window, &idle);
        ui::language::select(&window, lang);
        ui::render_cached(&window, &samples::customer_screens()[0].1);
        assert_eq!(
            labelled(&window, headline(lang)),
            1,
            "{lang} is on the screen"
        );
        // A fiat tile sold once: its price tag, and about what that is in sats under it.
        assert_eq!(labelled(&window, "€2.50"), 1, "the fiat price tag");
        assert_eq!(labelled(&window, "≈4,210 sats"), 1, "its sats, estimated");
        for (name, view) in samples::checked_screens() {
            ui::render_cached(&window, &view);
            ui::language::select(&window, lang);
            all.extend(
                problems(&window)
                    .into_iter()
                    .map(|p| format!("{lang}/{name}: {p}")),
            );
        }
    }
    assert!(all.is_empty(), "texts that do not fit:\n{}", all.join("\n"));

    // A failed refund in French: the sentence is translated, the backend's reason is not.
    let failed = samples::customer_screens()
        .into_iter()
        .find(|(n, _)| *n == "fault-refund-failed")
        .unwrap()
        .1;
    ui::render_cached(&window, &failed);
    ui::language::select(&window, "fr");
    assert_eq!(
        labelled(
            &window,
            "Le remboursement a échoué. Montrez le code à l’exploitant."
        ),
        1,
        "the refund failure in the customer's language"
    );
    assert_eq!(
        labelled(
            &window,
            "Raison : backend: refunds are not enabled on this store"
        ),
        1,
        "and why, as the backend said it"
    );
    ui::language::select(&window, "en");

    // A customer picks French on the idle screen; it lasts the sale, not past it.
    let idle = samples::customer_screens()[0].1.clone();
    ui::render_cached(&window, &samples::blank(Screen::Payment));
    ui::render_cached(&window, &idle);
    assert_eq!(labelled(&window, headline("en")), 1, "the default at idle");
    tap(&window, "Language: English");
    tap(&window, "Français");
    assert_eq!(window.idle().get_language(), "fr");
    assert_eq!(labelled(&window, headline("fr")), 1, "French at once");
    let mut pay = samples::customer_screens()
        .into_iter()
        .find(|(n, _)| *n == "payment")
        .unwrap()
        .1;
    pay.seconds_left = 65;
    ui::render_cached(&window, &pay);
    assert_eq!(
        labelled(&window, "Expire dans 1:05"),
        1,
        "the sale speaks French"
    );
    ui::render_cached(&window, &samples::blank(Screen::ThankYou));
    assert_eq!(labelled(&window, "Merci !"), 1);
    ui::render_cached(&window, &idle);
    assert_eq!(window.idle().get_language(), "en");
    assert_eq!(
        labelled(&window, headline("en")),
        1,
        "the next customer gets the default"
    );

    // The configured default is what idle comes back to.
    let mut german = idle.clone();
    german.language = "de".into();
    ui::render_cached(&window, &samples::blank(Screen::ThankYou));
    ui::render_cached(&window, &german);
    assert_eq!(labelled(&window, headline("de")), 1);
}
