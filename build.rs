fn main() {
    // Compile the touchscreen UI into Rust types: the windows (MachineWindow, SimWindow) and
    // the globals of every screen, the operator menu and the simulator panel it imports.
    slint_build::compile("ui/machine.slint").expect("ui/machine.slint must compile");
}
