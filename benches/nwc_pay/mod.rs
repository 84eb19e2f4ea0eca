//! The Nostr Wallet Connect rows of the bench table: the same vend cycles as the LNbits rows
//! (`measure_cycles`: pay → pump on, tap → QR, the 2 s polling client beside it), with the
//! machine on `kind = "nwc"` against a loopback nostr-relay (PyPI nostr-relay 1.14,
//! tests/support/nostr_relay.rs) and LNbits 1.6.2's nwcprovider extension
//! (tests/support/lnbits_nwc.rs), paid from a second wallet in that LNbits. nwcprovider
//! sends no notifications, so lnvend learns of each payment by polling `lookup_invoice`
//! over the relay: these rows show what a wallet without notifications costs.
//!
//! Run only with `--bench` and an LNbits virtualenv, like the LNbits rows; without the
//! relay's virtualenv (`./scripts/nostr-relay-venv`) or the extension they say "not run".

use std::path::Path;
use std::time::Duration;

use crate::lnbits_nwc::{self, NwcLnbits};
use crate::nostr_relay::{self, free_port, Relay};
use crate::{check_cycles, config, measure_cycles, Rig, Samples, Screen2, With};

/// `cycles` vend cycles through NWC; `None` (and a line saying why) when a part is missing.
pub fn measure(
    dir: &Path,
    lnbits_venv: &Path,
    cycles: usize,
    screen: &mut Option<Screen2>,
    max_delay: Duration,
) -> Option<Samples> {
    let Some(relay_venv) = nostr_relay::venv() else {
        println!("NWC rows: no nostr-relay virtualenv (run ./scripts/nostr-relay-venv); not run");
        return None;
    };
    if !lnbits_nwc::available() {
        println!("NWC rows: no LNbits nwcprovider extension; not run");
        return None;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = dir.join("nwc");
    let relay = rt.block_on(Relay::start(&relay_venv, &data.join("relay"), free_port()));
    let wallet = rt.block_on(NwcLnbits::start(
        lnbits_venv,
        &data.join("lnbits"),
        &relay.url(),
    ));
    let machine = data.join("machine");
    std::fs::create_dir_all(&machine).unwrap();
    let uri_file = machine.join("nwc.uri");
    std::fs::write(&uri_file, format!("{}\n", wallet.uri)).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&uri_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cfg = config(
        &machine,
        50,
        &format!(
            "\n[backend]\nkind = \"nwc\"\nconnection_uri_file = \"{}\"\nrequest_timeout_ms = 5000\nnetwork = \"bitcoin\"\n",
            uri_file.display()
        ),
    );
    let mut rig = Rig::start(
        &cfg,
        With::Nwc(wallet.lnbits.url(), wallet.payer_adminkey.clone()),
    );
    let s = measure_cycles(&mut rig, screen, cycles, max_delay);
    rig.shutdown();
    check_cycles("nwc", &s, cycles);
    drop(wallet);
    drop(relay);
    Some(s)
}
