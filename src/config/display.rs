//! `[display]`: the touchscreen as it is mounted (rotation), the customer screens' default
//! language and the optional wallet hint, with the checks of each.

use serde::{Deserialize, Serialize};

/// `[display]`: the touchscreen as it is mounted.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DisplayConfig {
    /// Clockwise rotation of the UI in degrees: 0, 90, 180 or 270. The official 7" display
    /// mounted upside down in a case needs 180. Touch input is rotated with it.
    #[serde(default)]
    pub rotation: u16,
    /// One short line on the payment screen for people with no Lightning wallet yet, e.g.
    /// "No wallet? Ask at the bar". Off (no line) when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_hint: Option<String>,
    /// The customer screens' language at idle (a customer may pick another for one sale):
    /// one of [`LANGUAGES`]. Default: "en". The operator menu stays in this language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// The languages of the customer screens (their catalogs are bundled in the binary).
pub const LANGUAGES: [&str; 5] = ["en", "fr", "pt", "es", "de"];

/// The longest wallet hint: one line beside the QR at the panel's size.
pub const MAX_WALLET_HINT_CHARS: usize = 60;

impl DisplayConfig {
    /// True when nothing was configured (then `check-config` does not print the section).
    pub fn is_default(&self) -> bool {
        *self == DisplayConfig::default()
    }

    /// Why the section is wrong, if it is.
    pub fn problem(&self) -> Option<String> {
        match self.rotation {
            0 | 90 | 180 | 270 => None,
            r => Some(format!(
                "{r} is not one of 0, 90, 180, 270 (degrees clockwise)"
            )),
        }
    }

    /// The configured default language ("en" unless set).
    pub fn language(&self) -> &str {
        self.language.as_deref().unwrap_or("en")
    }

    /// Why `language` is wrong, if it is.
    pub fn language_problem(&self) -> Option<String> {
        let l = self.language.as_deref()?;
        (!LANGUAGES.contains(&l)).then(|| format!("\"{l}\" is not one of {}", LANGUAGES.join(", ")))
    }

    /// Why `wallet_hint` is wrong, if it is: it must fit on its one line.
    pub fn wallet_hint_problem(&self) -> Option<String> {
        let hint = self.wallet_hint.as_deref()?;
        let chars = hint.trim().chars().count();
        if chars == 0 {
            Some("is empty; leave it out to show no hint".into())
        } else if chars > MAX_WALLET_HINT_CHARS {
            Some(format!(
                "is {chars} characters; at most {MAX_WALLET_HINT_CHARS} fit on its line"
            ))
        } else if hint.chars().any(char::is_control) {
            Some("must be one line of text".into())
        } else {
            None
        }
    }
}
