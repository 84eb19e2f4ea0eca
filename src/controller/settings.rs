//! The controller's settings: everything the controller takes from the configuration at
//! start (the catalog, pour and credit timings, the PIN, pictures, flow sensors, stock),
//! settled by `assemble` so the controller itself never reads the config file.

use super::*;

/// Settings of a controller.
#[derive(Clone, Debug)]
pub struct Settings {
    pub machine_id: String,
    pub catalog: Vec<Product>,
    pub invoice_expiry: Duration,
    pub pour: PourSettings,
    pub watch: WatchTiming,
    /// How often the backend's health is checked.
    pub health_every: Duration,
    /// How long a backend call may take before it counts as unreachable.
    pub request_timeout: Duration,
    /// The network every shown invoice must be for.
    pub network: Network,
    /// The operator PIN (no operator menu without one).
    pub pin_hash: Option<PinHash>,
    /// How long an owed credit is offered as "tap to pour".
    pub credit_window: Duration,
    /// The longest pour a product may be set to (max run time less the anti-drip pulse).
    pub max_pour: Duration,
    /// Whether the fault screen offers a refund (the backend refunds by itself).
    pub fault_refund: bool,
    /// Where the operator's product changes are saved (none: not saved).
    pub overrides_path: Option<std::path::PathBuf>,
    pub version: String,
    /// The payment screen's line for people with no Lightning wallet (empty: none).
    pub wallet_hint: String,
    /// The customer screens' default language.
    pub language: String,
    /// Each product's picture by index, decoded once at load (`None`: none).
    pub pictures: Vec<Option<Arc<crate::picture::Picture>>>,
    /// The wall and monotonic clocks, and whether the wall clock may be trusted.
    pub clock: Arc<dyn Clock>,
    /// The flow sensors, by channel (none: every pour is timed).
    pub flow: Vec<FlowChannel>,
    /// Stock keeping per product, by index.
    pub stock: Vec<StockSpec>,
    /// `[backend] hold`: whether sales use hold invoices (see `controller::hold`).
    pub hold: crate::config::HoldMode,
    /// Each product's pulse pattern by index (None: poured by the pump).
    pub pulses: Vec<Option<crate::dispense::PulseSpec>>,
    /// `[mdb]`: the machine sells through an MDB HAT.
    pub mdb: Option<MdbSettings>,
}
