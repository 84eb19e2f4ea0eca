//! Two small pieces of bookkeeping the controller keeps on the monotonic clock, apart from
//! its loop so they can be tested alone:
//!
//! * [`TokenBucket`]: how often a customer (or a prankster tapping and cancelling) may make
//!   the machine ask the backend for an invoice. Taps beyond it wait on "Preparing your
//!   invoice…" (with Cancel) for the next token instead of making unbounded invoices. A paid
//!   invoice gives its token back, so only unpaid ones count.
//! * [`Offers`]: which owed credits the public idle screen offers as "tap to pour", and
//!   until when. A wall clock that jumps by hours, or to 1970, cannot bring an old credit
//!   back onto the screen, because the window is measured here and not from the ledger's
//!   wall-clock dates.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::vend::SaleId;

/// Invoices a customer may start back to back before the bucket slows them down.
pub const INVOICE_BURST: u32 = 6;
/// One more invoice may be started after each such period.
pub const INVOICE_REFILL: Duration = Duration::from_secs(10);

/// A token bucket: `capacity` tokens, one more every `refill`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: u32,
    refill: Duration,
    tokens: u32,
    /// When the next token is added (while not full).
    next: Instant,
}

impl TokenBucket {
    pub fn new(capacity: u32, refill: Duration, now: Instant) -> TokenBucket {
        TokenBucket {
            capacity,
            refill,
            tokens: capacity,
            next: now + refill,
        }
    }

    fn top_up(&mut self, now: Instant) {
        while self.tokens < self.capacity && now >= self.next {
            self.tokens += 1;
            self.next += self.refill;
        }
        if self.tokens == self.capacity {
            self.next = now + self.refill;
        }
    }

    /// Takes a token if one is there.
    pub fn take(&mut self, now: Instant) -> bool {
        self.top_up(now);
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }

    /// Returns a token: an invoice that was paid cost the backend nothing wasted, so a
    /// busy machine selling one drink after another is never slowed down.
    pub fn give_back(&mut self) {
        self.tokens = (self.tokens + 1).min(self.capacity);
    }

    /// When a token will be there (now, if one is).
    pub fn ready_at(&mut self, now: Instant) -> Instant {
        self.top_up(now);
        if self.tokens > 0 {
            now
        } else {
            self.next
        }
    }
}

/// Owed credits on offer on the public screen, each until its window ends.
#[derive(Debug, Default)]
pub struct Offers {
    until: HashMap<SaleId, Instant>,
}

impl Offers {
    /// Offers `sale` until `until` (a later offer of the same sale replaces it).
    pub fn offer(&mut self, sale: SaleId, until: Instant) {
        self.until.insert(sale, until);
    }

    pub fn withdraw(&mut self, sale: &SaleId) {
        self.until.remove(sale);
    }

    /// The sales on offer at `now`, oldest offer first; ended offers are forgotten.
    pub fn current(&mut self, now: Instant) -> Vec<SaleId> {
        self.until.retain(|_, until| *until > now);
        let mut v: Vec<(Instant, SaleId)> = self
            .until
            .iter()
            .map(|(id, until)| (*until, id.clone()))
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// When the next offer ends.
    pub fn next_end(&self) -> Option<Instant> {
        self.until.values().min().copied()
    }

    pub fn is_offered(&self, sale: &SaleId, now: Instant) -> bool {
        self.until.get(sale).is_some_and(|u| *u > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_allows_a_burst_then_one_per_refill() {
        let t = Instant::now();
        let mut b = TokenBucket::new(3, Duration::from_secs(10), t);
        assert!(b.take(t) && b.take(t) && b.take(t));
        assert!(!b.take(t), "burst used up");
        assert_eq!(b.ready_at(t), t + Duration::from_secs(10));
        assert!(!b.take(t + Duration::from_secs(9)));
        assert!(b.take(t + Duration::from_secs(10)));
        assert!(!b.take(t + Duration::from_secs(10)));
        // A long pause refills to the capacity, not beyond.
        let later = t + Duration::from_secs(1000);
        assert!(b.take(later) && b.take(later) && b.take(later));
        assert!(!b.take(later));
        // A paid invoice gives its token back, never beyond the capacity.
        b.give_back();
        assert!(b.take(later));
        for _ in 0..10 {
            b.give_back();
        }
        assert!(b.take(later) && b.take(later) && b.take(later));
        assert!(!b.take(later));
    }

    #[tokio::test(start_paused = true)]
    async fn offers_end_on_the_monotonic_clock() {
        let t = Instant::now();
        let mut o = Offers::default();
        o.offer(SaleId("a".into()), t + Duration::from_secs(120));
        o.offer(SaleId("b".into()), t + Duration::from_secs(60));
        assert_eq!(o.current(t), vec![SaleId("b".into()), SaleId("a".into())]);
        assert_eq!(o.next_end(), Some(t + Duration::from_secs(60)));
        assert_eq!(
            o.current(t + Duration::from_secs(60)),
            vec![SaleId("a".into())]
        );
        assert!(!o.is_offered(&SaleId("b".into()), t + Duration::from_secs(60)));
        o.withdraw(&SaleId("a".into()));
        assert!(o.current(t).is_empty());
    }
}
