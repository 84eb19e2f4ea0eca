//! The `[display]` section of the config and how it reaches slint before the UI starts.
//!
//! On the Pi the kiosk build (cargo feature `kiosk`) draws straight to the screen through
//! slint's linuxkms backend, which takes its rotation from the `SLINT_KMS_ROTATION`
//! environment variable when the window is created. The config file is the one place a maker
//! edits, so `lnvend run` copies the configured rotation into that variable at start-up,
//! before any thread exists that could read the environment at the same time.

use crate::config::{DisplayConfig, Mode};

/// Environment variables the UI backend needs for `mode`, given what the environment
/// already says about the backend (`SLINT_BACKEND`).
pub fn ui_env(
    display: &DisplayConfig,
    mode: Mode,
    kiosk: bool,
    backend_env: Option<&str>,
) -> Vec<(&'static str, String)> {
    match mode {
        // The simulator is a desktop window; rotating it would only confuse.
        Mode::Sim => Vec::new(),
        Mode::Run if !kiosk => Vec::new(),
        Mode::Run => {
            let mut vars = Vec::new();
            // With only the kiosk backend compiled in slint picks it anyway; naming it keeps
            // a build with both features (`--features kiosk` on top of the default desktop)
            // on the touchscreen. An explicit SLINT_BACKEND (e.g. linuxkms-femtovg) wins.
            if backend_env.is_none_or(str::is_empty) {
                vars.push(("SLINT_BACKEND", "linuxkms-software".to_string()));
            }
            vars.push(("SLINT_KMS_ROTATION", display.rotation.to_string()));
            vars
        }
    }
}

/// Sets the UI backend's environment for `mode`. Call it first thing in `app::run`, before
/// the async runtime starts its threads.
pub fn prepare_ui_env(display: &DisplayConfig, mode: Mode) {
    let backend = std::env::var("SLINT_BACKEND").ok();
    let vars = ui_env(display, mode, cfg!(feature = "kiosk"), backend.as_deref());
    let rotation = display.rotation;
    if mode == Mode::Run && !cfg!(feature = "kiosk") && rotation != 0 {
        tracing::warn!(
            rotation,
            "display.rotation applies to the kiosk build only; this build opens a desktop window"
        );
    }
    for (key, value) in vars {
        tracing::info!(%key, %value, "UI backend setting");
        // Single-threaded here (see above), so changing the environment is sound.
        std::env::set_var(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const BASE: &str = r#"
[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 4000

[gpio]
backend = "mock"
"#;

    #[test]
    fn rotation_defaults_to_zero_and_accepts_the_four_right_angles() {
        let c = Config::parse(BASE, "test.toml", Mode::Sim).unwrap();
        assert_eq!(c.display.rotation, 0);
        assert!(!c.to_redacted_toml().contains("[display]"));
        for r in [0, 90, 180, 270] {
            let text = format!("{BASE}\n[display]\nrotation = {r}\n");
            let c = Config::parse(&text, "test.toml", Mode::Sim).unwrap();
            assert_eq!(c.display.rotation, r);
        }
    }

    #[test]
    fn another_rotation_is_refused_at_its_line() {
        let text = format!("{BASE}\n[display]\nrotation = 45\n");
        let e = Config::parse(&text, "test.toml", Mode::Sim).unwrap_err();
        assert_eq!(e.field, "display.rotation");
        assert_eq!(e.line, 11, "{e}");
        assert!(e.message.contains("0, 90, 180, 270"), "{e}");
        assert!(
            e.to_string()
                .starts_with("test.toml:11:1: display.rotation:"),
            "{e}"
        );
    }

    #[test]
    fn a_negative_rotation_or_an_unknown_display_key_is_refused_at_its_line() {
        let e = Config::parse(
            &format!("{BASE}\n[display]\nrotation = -90\n"),
            "test.toml",
            Mode::Sim,
        )
        .unwrap_err();
        assert_eq!(e.line, 11, "{e}");
        assert!(e.field.contains("rotation"), "{e}");
        let e = Config::parse(
            &format!("{BASE}\n[display]\nrotate = 90\n"),
            "test.toml",
            Mode::Sim,
        )
        .unwrap_err();
        assert_eq!(e.line, 11, "{e}");
        assert!(e.message.contains("unknown field `rotate`"), "{e}");
    }

    #[test]
    fn the_kiosk_gets_the_rotation_and_the_kms_backend() {
        let d = DisplayConfig {
            rotation: 180,
            ..DisplayConfig::default()
        };
        assert_eq!(
            ui_env(&d, Mode::Run, true, None),
            vec![
                ("SLINT_BACKEND", "linuxkms-software".to_string()),
                ("SLINT_KMS_ROTATION", "180".to_string())
            ]
        );
        assert_eq!(
            ui_env(&d, Mode::Run, true, Some("linuxkms-femtovg")),
            vec![("SLINT_KMS_ROTATION", "180".to_string())]
        );
        assert!(ui_env(&d, Mode::Run, false, None).is_empty());
        assert!(ui_env(&d, Mode::Sim, true, None).is_empty());
    }
}
