fn main() {
    // Compile the touchscreen UI into Rust types: the windows (MachineWindow, SimWindow) and
    // the globals of every screen, the operator menu and the simulator panel it imports.
    // The customer screens' translations (translations/<lang>/LC_MESSAGES/lnvend.po) are
    // compiled into the binary: nothing to install beside it, nothing to go missing. Each
    // message is its English text alone, without the component as context, so one phrase
    // is translated once wherever it appears.
    println!("cargo:rerun-if-changed=translations");
    let config = slint_build::CompilerConfiguration::new()
        .with_bundled_translations("translations")
        .with_default_translation_context(slint_build::DefaultTranslationContext::None);
    slint_build::compile_with_config("ui/machine.slint", config)
        .expect("ui/machine.slint must compile");
}
