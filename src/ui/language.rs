//! The customer screens' language: slint's bundled gettext catalogs
//! (translations/<lang>/LC_MESSAGES/lnvend.po, compiled in by build.rs), picked by the
//! customer on the idle screen for one sale and set back to the configured default when the
//! screen returns to idle, a minute after the pick when nobody buys (a timer on the idle
//! screen), or when the operator's PIN pad or menu comes up (the operator
//! menu stays in the default language). Language is presentation only: it never reaches
//! the controller, so no tap on a language can start, stop or price anything.

use super::MachineUi;
use crate::config::LANGUAGES;
use crate::controller::Screen;

/// Switches every translated text to `code`; anything not one of [`LANGUAGES`] is English.
pub fn select<W: MachineUi>(window: &W, code: &str) {
    let code = if LANGUAGES.contains(&code) {
        code
    } else {
        "en"
    };
    if let Err(e) = slint::select_bundled_translation(code) {
        tracing::warn!(language = code, error = %e, "cannot switch the screen's language");
    }
    window.idle().set_language(code.into());
}

/// Wires the idle screen's language buttons. Presentation only: the language never
/// reaches the controller.
pub fn connect<W: MachineUi>(window: &W) {
    let weak = window.as_weak();
    window.idle().on_pick_language(move |code| {
        if let Some(w) = weak.upgrade() {
            select(&w, &code);
        }
    });
}

/// Whether moving from `last` to `now` ends the customer's choice of language: back on
/// the idle screen after anything else, the first view of all, or the operator's screens.
pub fn back_to_default(last: Option<Screen>, now: Screen) -> bool {
    let resets = matches!(now, Screen::Idle | Screen::Pin | Screen::Operator);
    // The first view sets the language whatever it shows: slint would otherwise start in
    // the system locale's.
    last.is_none() || (resets && last != Some(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choice_lasts_one_sale_and_never_reaches_the_operator() {
        assert!(back_to_default(None, Screen::Idle), "at start");
        assert!(
            back_to_default(None, Screen::OutOfService),
            "at start, whatever shows"
        );
        assert!(
            !back_to_default(Some(Screen::Idle), Screen::Idle),
            "a tick on idle"
        );
        assert!(
            !back_to_default(Some(Screen::Idle), Screen::Creating),
            "picked on idle, kept for the sale"
        );
        assert!(!back_to_default(Some(Screen::Creating), Screen::Payment));
        assert!(!back_to_default(Some(Screen::Pouring), Screen::ThankYou));
        assert!(
            !back_to_default(Some(Screen::Payment), Screen::Expired),
            "the expiry notice in the customer's language"
        );
        assert!(back_to_default(Some(Screen::ThankYou), Screen::Idle));
        assert!(back_to_default(Some(Screen::Expired), Screen::Idle));
        assert!(back_to_default(Some(Screen::Fault), Screen::Idle));
        assert!(back_to_default(Some(Screen::Idle), Screen::Pin));
        assert!(back_to_default(Some(Screen::Pin), Screen::Operator));
    }
}
