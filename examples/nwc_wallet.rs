//! A local Nostr Wallet Connect wallet for the simulator (`./scripts/sim-nwc` runs it):
//! lnvend's fake NIP-47 wallet service (NIP-44, `payment_received` and
//! `hold_invoice_accepted` notifications, hold invoices) on a relay of your choice, so a
//! developer can watch the whole exchange with `lnvend sim` and `kind = "nwc"`. Its
//! invoices are regtest BOLT11s that no node can pay: press Enter here to pay the latest one
//! (in full, or held if it is a hold invoice).
//!
//! `cargo run --example nwc_wallet -- RELAY_URL URI_FILE` writes the connection URI to
//! URI_FILE (mode 0600: it holds the client's secret key), then serves until interrupted.

use std::sync::Arc;
use std::time::Duration;

use lnvend::backend::nwc::fake::{FakeWallet, WalletBehaviour};
use lnvend::backend::nwc::link::WsConnector;
use tokio::io::AsyncBufReadExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(relay), Some(uri_file)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: nwc_wallet RELAY_URL URI_FILE (e.g. ws://127.0.0.1:6969 lnvend-sim-data/nwc.uri)");
    };
    let relay = url::Url::parse(&relay)?;
    let connector = Arc::new(WsConnector {
        tls: Default::default(),
        timeout: Duration::from_secs(5),
    });
    let wallet = FakeWallet::start(
        connector,
        relay.clone(),
        WalletBehaviour {
            holds: true,
            ..WalletBehaviour::default()
        },
    );
    write_private(std::path::Path::new(&uri_file), wallet.uri().expose())?;
    eprintln!(
        "nwc_wallet: serving wallet {} on {relay}; connection URI in {uri_file}",
        wallet.pubkey()
    );
    eprintln!("nwc_wallet: press Enter to pay the latest invoice");

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut shown: Option<String> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    loop {
        tokio::select! {
            line = lines.next_line() => {
                if line?.is_none() {
                    // stdin closed (run in the background): keep serving.
                    std::future::pending::<()>().await;
                }
                match wallet.latest() {
                    Some((hash, _, false)) => {
                        let held = wallet.hold_status(&hash).is_some();
                        if wallet.pay(&hash).await {
                            eprintln!("nwc_wallet: paid {hash}{}", if held { " (held until lnvend settles)" } else { "" });
                        } else {
                            eprintln!("nwc_wallet: {hash} cannot be paid any more");
                        }
                    }
                    Some((hash, _, true)) => eprintln!("nwc_wallet: {hash} is paid already"),
                    None => eprintln!("nwc_wallet: no invoice yet"),
                }
            }
            _ = tick.tick() => {
                if let Some((hash, msat, _)) = wallet.latest() {
                    if shown.as_deref() != Some(hash.as_str()) {
                        let kind = if wallet.hold_status(&hash).is_some() { "hold invoice" } else { "invoice" };
                        eprintln!("nwc_wallet: made a {kind} {hash} for {} sat; Enter pays it", msat / 1000);
                        shown = Some(hash);
                    }
                }
            }
        }
    }
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{text}")
}
