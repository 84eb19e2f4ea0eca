//! A language picked on the idle screen by someone who then buys nothing goes back to the
//! default after a minute, so the next customer does not find the machine in it; headless
//! through slint's testing backend with mocked time.
//!
//! The testing backend can be initialised once per process, so this file holds one test.

use std::time::Duration;

use i_slint_backend_testing::ElementHandle;
use lnvend::ui::{self, samples, MachineUi, MachineWindow};
use slint::ComponentHandle;

#[test]
fn a_language_picked_and_left_goes_back_to_the_default_after_a_minute() {
    i_slint_backend_testing::init_integration_test_with_mock_time();
    let window = MachineWindow::new().unwrap();
    ui::language::connect(&window);
    window.show().unwrap();
    let idle = samples::customer_screens()[0].1.clone();
    ui::render_cached(&window, &idle);
    let button = |label: &str| {
        ElementHandle::find_by_accessible_label(&window, label)
            .find(|e| e.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::Button))
            .unwrap_or_else(|| panic!("a button {label:?}"))
    };
    button("Language: English").invoke_accessible_default_action();
    button("Deutsch").invoke_accessible_default_action();
    assert_eq!(window.idle().get_language(), "de");
    // What the event loop does at once after a tap: run the change handlers (the timer's
    // start among them).
    i_slint_backend_testing::mock_elapsed_time(Duration::ZERO);
    i_slint_backend_testing::mock_elapsed_time(Duration::from_secs(30));
    assert_eq!(
        window.idle().get_language(),
        "de",
        "still German after 30 s"
    );
    i_slint_backend_testing::mock_elapsed_time(Duration::from_secs(31));
    assert_eq!(
        window.idle().get_language(),
        "en",
        "the default after a minute"
    );
    assert_eq!(
        ElementHandle::find_by_accessible_label(&window, "Tap a drink — pay with Lightning ⚡")
            .count(),
        1,
        "on the screen in English"
    );
}
