//! What a backend remembers about the invoices it made in this run (the amount asked, the
//! wallet, …), kept until a day after each invoice expires and then forgotten, so that a
//! machine running for months does not grow by one entry per sale. A forgotten entry is no
//! loss: the backends already answer without it after a restart, by asking the server.

use std::collections::HashMap;
use std::sync::Mutex;

/// How long past an invoice's expiry its entry is kept: far beyond any late check while
/// the machine runs (the watcher gives up a minute after expiry).
pub const KEEP_AFTER_EXPIRY_S: u64 = 24 * 3600;

/// Entries keyed by invoice id or payment hash.
#[derive(Debug)]
pub struct InvoiceMemo<V> {
    map: Mutex<HashMap<String, (u64, V)>>,
}

impl<V> Default for InvoiceMemo<V> {
    fn default() -> Self {
        InvoiceMemo {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> InvoiceMemo<V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, V)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers `value` for the invoice `key` expiring at `expires_at_unix`, and forgets
    /// every entry whose time is up at `now_unix`.
    pub fn insert(&self, key: String, expires_at_unix: u64, value: V, now_unix: u64) {
        let mut map = self.lock();
        map.retain(|_, (forget_at, _)| *forget_at > now_unix);
        map.insert(
            key,
            (expires_at_unix.saturating_add(KEEP_AFTER_EXPIRY_S), value),
        );
    }

    pub fn get(&self, key: &str) -> Option<V> {
        self.lock().get(key).map(|(_, v)| v.clone())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_until_a_day_after_expiry_then_make_room() {
        let memo = InvoiceMemo::default();
        let t0 = 1_700_000_000;
        memo.insert("a".into(), t0 + 600, 1u64, t0);
        memo.insert("b".into(), t0 + 3600, 2u64, t0);
        // Late checks within the day still find the amount asked.
        memo.insert(
            "c".into(),
            t0 + 90_000,
            3,
            t0 + 600 + KEEP_AFTER_EXPIRY_S - 1,
        );
        assert_eq!(memo.get("a"), Some(1));
        assert_eq!(memo.len(), 3);
        // The next sale after a's day is over forgets a, keeps b.
        memo.insert("d".into(), t0 + 90_000, 4, t0 + 600 + KEEP_AFTER_EXPIRY_S);
        assert_eq!(memo.get("a"), None);
        assert_eq!(memo.get("b"), Some(2));
        assert_eq!(memo.len(), 3);
    }

    #[test]
    fn a_year_of_sales_keeps_only_about_a_day_of_entries() {
        let memo = InvoiceMemo::default();
        let t0 = 1_700_000_000;
        // One sale every 10 minutes for a year, 10-minute invoices.
        for i in 0..(365 * 24 * 6) {
            let now = t0 + i * 600;
            memo.insert(format!("inv{i}"), now + 600, i, now);
        }
        assert!(memo.len() <= 24 * 6 + 2, "{} entries", memo.len());
    }
}
