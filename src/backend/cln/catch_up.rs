//! Core Lightning's "payments made while lnvend was down", asked at start: the invoices the
//! node changed since the last catch-up, read in pages (`listinvoices` by the `updated`
//! index, v23.08+), the paid ones among them past the saved `pay_index` reported. Two
//! cursors are kept in the data folder: `cln-updated-index` (where the next catch-up
//! starts reading) and `cln-pay-index` (the highest payment lnvend has seen, also raised by
//! every payment it confirms). A node paid 10,000 times is read in about twenty calls, not
//! one call per payment as `waitanyinvoice` would need.
//!
//! A catch-up that fails (lightningd down at start, a rune without `listinvoices`) is tried
//! again with a growing pause until it succeeds: a payment made while lnvend was down must
//! not be lost to one bad moment at start.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

use super::{ClnBackend, Rpc};
use crate::backend::{BackendError, InvoiceId};

/// Invoices asked for in one call. A page of lnvend's invoices is about 1 KB each, so well
/// under the 1 MiB reply cap; a page that still comes back too big is asked for again in
/// halves.
pub const PAGE: u64 = 500;
/// Safety bound on the pages of one catch-up (a node that keeps returning invoices must not
/// keep it going for ever): ten million invoices.
const MAX_PAGES: usize = 20_000;
/// The pause before the first retry of a failed catch-up; it doubles up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(5);
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// One of the node's indexes that lnvend keeps in `<data_dir>/<name>`, so a restart can
/// ask the node for exactly what happened since.
#[derive(Debug)]
pub struct CursorFile {
    path: PathBuf,
    /// Serialises writers; holds the last value written.
    last: Mutex<Option<u64>>,
}

impl CursorFile {
    /// The highest `pay_index` lnvend has seen (`cln-pay-index`).
    pub fn pay_index(data_dir: &Path) -> CursorFile {
        CursorFile::named(data_dir, "cln-pay-index")
    }

    /// The `updated` index the last catch-up read up to (`cln-updated-index`).
    pub fn updated_index(data_dir: &Path) -> CursorFile {
        CursorFile::named(data_dir, "cln-updated-index")
    }

    fn named(data_dir: &Path, name: &str) -> CursorFile {
        CursorFile {
            path: data_dir.join(name),
            last: Mutex::new(None),
        }
    }

    /// The saved index; `Ok(None)` when lnvend never saved one.
    pub fn load(&self) -> Result<Option<u64>, String> {
        match std::fs::read_to_string(&self.path) {
            Ok(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| format!("{} is corrupt: {e}", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", self.path.display())),
        }
    }

    /// Saves `index` if it is higher than the saved one: write a temporary file, fsync it,
    /// rename it over the old one, so a power cut leaves either the old or the new value.
    /// (Small synchronous writes: a few hundred microseconds, once per sale.)
    pub fn raise_to(&self, index: u64) -> Result<(), String> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let current = match *last {
            Some(v) => Some(v),
            None => self.load()?,
        };
        if current.is_some_and(|c| c >= index) {
            *last = current;
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            writeln!(f, "{index}")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // The rename itself is durable only once the directory is synced.
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| format!("cannot save {}: {e}", self.path.display()))?;
        *last = Some(index);
        Ok(())
    }
}

/// What one page says: the paid invoices on it and the last `updated` index it holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// (label, pay_index) of each paid invoice.
    pub paid: Vec<(String, u64)>,
    pub last_updated: Option<u64>,
    pub len: usize,
}

/// Reads one page of `listinvoices index=updated start=<start>`, refusing one that is not
/// in the order asked for (a hostile or broken node must not make the walk go backwards).
pub fn read_page(reply: &Value, start: u64) -> Result<Page, BackendError> {
    let bad = |why: &str| BackendError::BadReply(format!("listinvoices by updated: {why}"));
    let invoices = reply
        .get("invoices")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `invoices` array"))?;
    let mut page = Page {
        len: invoices.len(),
        ..Page::default()
    };
    for inv in invoices {
        let updated = inv
            .get("updated_index")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("an invoice without `updated_index`"))?;
        if updated < start || page.last_updated.is_some_and(|l| updated <= l) {
            return Err(bad("invoices out of order"));
        }
        page.last_updated = Some(updated);
        if inv.get("status").and_then(Value::as_str) == Some("paid") {
            let pay_index = inv
                .get("pay_index")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("a paid invoice without `pay_index`"))?;
            let label = match inv.get("label") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => return Err(bad("an invoice without `label`")),
            };
            page.paid.push((label, pay_index));
        }
    }
    Ok(page)
}

impl<R: Rpc> ClnBackend<R> {
    /// Asks until the node answers (see the module header); the caller's task is aborted
    /// at shutdown.
    pub(super) async fn catch_up(&self) -> Vec<InvoiceId> {
        let mut pause = RETRY_FIRST;
        loop {
            match self.catch_up_once().await {
                Ok(found) => {
                    self.caught_up
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    return found;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?pause, "could not ask the node for payments made while lnvend was down; asking again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// One walk over the invoices updated since the last one.
    async fn catch_up_once(&self) -> Result<Vec<InvoiceId>, BackendError> {
        let saved_pay = self.pay_index.load().map_err(BackendError::Rejected)?;
        let saved_updated = self.updated_index.load().map_err(BackendError::Rejected)?;
        // On a first start there is no cursor: every payment the node ever received (other
        // apps' too) would look new. Walk to the node's latest index and report nothing.
        let first_start = saved_pay.is_none() && saved_updated.is_none();
        let floor = saved_pay.unwrap_or(0);
        // `updated` is 1-based: 0 would also list invoices never changed since creation.
        let mut start = saved_updated.map_or(1, |u| u + 1);
        let mut limit = PAGE;
        let mut highest_pay = floor;
        let mut found = Vec::new();
        for _ in 0..MAX_PAGES {
            let params = json!({"index": "updated", "start": start, "limit": limit});
            let reply = match self
                .call_as("listinvoices", super::CATCH_UP_SHAPE, params)
                .await
            {
                // Most likely a page over the reply cap (long descriptions): smaller pages.
                Err(BackendError::BadReply(why)) if limit > 1 => {
                    tracing::debug!(%why, limit, "listinvoices page refused; asking for half");
                    limit /= 2;
                    continue;
                }
                other => other?,
            };
            let page = read_page(&reply, start)?;
            for (label, pay_index) in page.paid {
                highest_pay = highest_pay.max(pay_index);
                // Other apps' payments on the same node move the cursor but are not
                // reported: each reported one is checked with the node one by one.
                if !first_start && pay_index > floor && label.starts_with(super::LABEL_PREFIX) {
                    found.push(InvoiceId(label));
                }
            }
            match page.last_updated {
                Some(last) => start = last + 1,
                None => break,
            }
            if (page.len as u64) < limit {
                break;
            }
        }
        // Saved after the walk: a crash midway repeats it, and a repeated confirmation of
        // the same sale is harmless (the ledger owes each sale once).
        if first_start || highest_pay > floor {
            self.pay_index
                .raise_to(highest_pay)
                .map_err(BackendError::Rejected)?;
        }
        self.updated_index
            .raise_to(start - 1)
            .map_err(BackendError::Rejected)?;
        if !found.is_empty() {
            tracing::warn!(
                count = found.len(),
                "the node saw payments while lnvend was down"
            );
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_only_rises_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let f = CursorFile::pay_index(dir.path());
        assert_eq!(f.load().unwrap(), None);
        f.raise_to(5).unwrap();
        f.raise_to(3).unwrap();
        assert_eq!(CursorFile::pay_index(dir.path()).load().unwrap(), Some(5));
        assert_eq!(CursorFile::updated_index(dir.path()).load().unwrap(), None);
        std::fs::write(dir.path().join("cln-pay-index"), "garbage").unwrap();
        assert!(CursorFile::pay_index(dir.path()).load().is_err());
    }

    #[test]
    fn a_page_gives_its_paid_invoices_and_must_go_forward() {
        let page = json!({"invoices": [
            {"label": "a", "status": "expired", "updated_index": 7},
            {"label": "b", "status": "paid", "pay_index": 3, "updated_index": 9},
        ]});
        assert_eq!(
            read_page(&page, 7).unwrap(),
            Page {
                paid: vec![("b".into(), 3)],
                last_updated: Some(9),
                len: 2
            }
        );
        for bad in [
            json!({"invoices": [{"label": "a", "status": "paid", "updated_index": 9}]}),
            json!({"invoices": [{"label": "a", "status": "expired"}]}),
            json!({"invoices": [
                {"label": "a", "status": "expired", "updated_index": 9},
                {"label": "b", "status": "expired", "updated_index": 9}]}),
            json!({"nothing": []}),
        ] {
            assert!(read_page(&bad, 1).is_err(), "{bad}");
        }
        // Behind the start asked for: a node going backwards.
        let behind = json!({"invoices": [{"label": "a", "status": "expired", "updated_index": 2}]});
        assert!(read_page(&behind, 5).is_err());
    }
}
