//! What `lnvend pump-off` reads of a config file: the `[gpio]` table and every product's
//! `pulse_pin`, and nothing else. The command runs after every exit of the service (a SIGKILL
//! included) and must drive the lines low even when the rest of the file would stop
//! `lnvend run`, so these readers never open a secret file and never fail on another table.

use std::path::Path;

use serde::Deserialize;

use super::gpio::{self, RawGpio};
use super::locate::Spans;
use super::{Config, ConfigError, GpioConfig, Mode, MAX_BCM};

impl Config {
    /// Only the `[gpio]` table of a config file, for `lnvend pump-off`. That command runs
    /// after every exit of the service (a SIGKILL included) and must drive the pins low even
    /// when the rest of the file (a missing key file, a broken `[backend]`) would stop
    /// `lnvend run`; so nothing outside the table is read, and no secret file is opened. The
    /// table itself is checked (types, unknown keys, pins, backend, trace) and located in
    /// the file as at a full load.
    pub fn load_gpio(path: &Path, mode: Mode) -> Result<GpioConfig, ConfigError> {
        // Not `deny_unknown_fields`: every other key of the file is skipped unread.
        #[derive(Deserialize)]
        struct GpioOnly {
            #[serde(default)]
            gpio: RawGpio,
        }
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            column: 0,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        let spans = Spans::new(&text);
        let mut g = toml::from_str::<GpioOnly>(&text)
            .map_err(|e| spans.locate_de(&file, &e))?
            .gpio
            .settle(mode.gpio_backend());
        gpio::check_outputs(&g).map_err(|i| spans.locate(&file, i))?;
        if let Some(t) = g.trace.as_mut() {
            if t.is_relative() {
                *t = path.parent().unwrap_or(Path::new(".")).join(&*t);
            }
        }
        Ok(g)
    }

    /// Every `pulse_pin` of the file's `[[product]]` tables, for `pump-off`: read leniently
    /// (a table this cannot read is skipped, a pin past BCM 27 ignored), so that nothing
    /// else in the file keeps the lines it can read from being driven low.
    pub fn pulse_pins_of(path: &Path) -> Vec<u8> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Vec::new();
        };
        let Ok(value) = text.parse::<toml::Table>() else {
            return Vec::new();
        };
        let mut pins: Vec<u8> = value
            .get("product")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("pulse_pin")?.as_integer())
            .filter_map(|n| u8::try_from(n).ok())
            .filter(|n| *n <= MAX_BCM)
            .collect();
        pins.sort_unstable();
        pins.dedup();
        pins
    }
}
