//! What the relays send, routed: relay messages parsed (only under the size limit, events
//! verified), each event handled once (a bounded set of recent ids), a response given only
//! to the request its `e` tag names once `Connection::open_response` accepted it, a
//! notification turned into at most one queued wake-up per watched invoice.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{lock, Shared, SEEN, SUB_NWC};
use crate::backend::nwc::link::relay_label;
use crate::nostr::nwc::{
    answered_request, NwcError, WalletInfo, KIND_INFO, KIND_NOTIFICATION_NIP04,
    KIND_NOTIFICATION_NIP44, KIND_RESPONSE,
};
use crate::nostr::relay::{parse_relay_message, RelayMessage};
use crate::nostr::{Event, EventId};

#[derive(Default)]
pub(super) struct Seen {
    set: HashSet<EventId>,
    order: VecDeque<EventId>,
}

impl Seen {
    /// Whether `id` is new (and remembers it).
    pub(super) fn first(&mut self, id: EventId) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// One message from relay `index`; `Some(reason)` to drop the connection.
pub(super) fn handle(shared: &Shared, index: usize, text: &str) -> Option<&'static str> {
    let relay = relay_label(&shared.relays[index].url);
    match parse_relay_message(text) {
        Err(e) => {
            shared.counters.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%relay, error = %e, "ignored a relay message");
        }
        Ok(RelayMessage::Event { event, .. }) => route(shared, &event),
        Ok(RelayMessage::Eose { subscription }) => {
            if subscription == SUB_NWC {
                shared.relays[index].up.store(true, Ordering::SeqCst);
            }
        }
        Ok(RelayMessage::Ok {
            event_id,
            accepted: false,
            message,
        }) => {
            tracing::warn!(%relay, event = %event_id, %message, "the relay refused our request");
        }
        Ok(RelayMessage::Ok { .. }) => {}
        Ok(RelayMessage::Closed {
            subscription,
            message,
        }) => {
            tracing::warn!(%relay, %subscription, %message, "the relay closed a subscription");
            if subscription == SUB_NWC {
                return Some("the relay closed our subscription");
            }
        }
        Ok(RelayMessage::Notice { message }) => {
            tracing::debug!(%relay, %message, "relay notice");
        }
        Ok(RelayMessage::Other { .. }) => {}
    }
    None
}

/// A verified event: handled once, and only as what it proves.
fn route(shared: &Shared, event: &Event) {
    if !lock(&shared.seen).first(event.id()) {
        shared.counters.duplicates.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let refused = |what: &str, e: &NwcError| {
        shared.counters.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(event = %event.id(), error = %e, "refused a {what}");
    };
    match event.kind() {
        KIND_INFO => match WalletInfo::from_event(&shared.conn, event) {
            Ok(info) => {
                let at = event.created_at();
                shared.info.send_if_modified(|cur| {
                    let newer = cur.as_ref().is_none_or(|(t, _)| at >= *t);
                    if newer {
                        *cur = Some((at, info));
                    }
                    newer
                });
            }
            Err(e) => refused("wallet info event", &e),
        },
        KIND_RESPONSE => {
            let Some(id) = answered_request(event) else {
                return refused("response", &NwcError::NotOurRequest);
            };
            let mut pending = lock(&shared.pending);
            let Some(p) = pending.get(&id) else {
                // A reply to a request that is answered, given up, or not ours.
                shared.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let result = match shared.conn.open_response(&p.sent, event) {
                Ok(reply) => Ok(reply),
                Err(NwcError::Wallet(w)) => Err(NwcError::Wallet(w)),
                Err(e) => return refused("response", &e),
            };
            *lock(&shared.last_answer) = Some(Instant::now());
            if let Some(p) = pending.remove(&id) {
                let _ = p.reply.send(result);
            }
        }
        KIND_NOTIFICATION_NIP04 | KIND_NOTIFICATION_NIP44 => {
            match shared.conn.open_notification(event) {
                Ok(Some(wake)) => {
                    let mut watchers = lock(&shared.watchers);
                    if let Some(list) = watchers.get_mut(&wake.payment_hash.0) {
                        shared
                            .counters
                            .notifications
                            .fetch_add(1, Ordering::Relaxed);
                        // A full channel already holds a wake-up: the flood coalesces here.
                        list.retain(|tx| {
                            !matches!(tx.try_send(()), Err(mpsc::error::TrySendError::Closed(())))
                        });
                    }
                }
                Ok(None) => {}
                Err(e) => refused("notification", &e),
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_ids_are_bounded_and_a_repeat_is_caught() {
        let mut seen = Seen::default();
        let id = |n: u32| EventId::from_hex(&format!("{n:064x}")).unwrap();
        assert!(seen.first(id(1)));
        assert!(!seen.first(id(1)));
        for n in 2..(SEEN as u32 + 10) {
            assert!(seen.first(id(n)));
        }
        assert_eq!(seen.set.len(), SEEN);
        assert_eq!(seen.order.len(), SEEN);
        // The oldest was forgotten; a recent one is still caught.
        assert!(seen.first(id(1)));
        assert!(!seen.first(id(SEEN as u32 + 5)));
    }
}
