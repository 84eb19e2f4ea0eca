fn main() {
    // Compile the touchscreen UI into Rust types (MachineWindow, SimPanel and their globals).
    slint_build::compile("ui/machine.slint").expect("ui/machine.slint must compile");
}
