//! The NIP-01 relay protocol as text: parsing what a relay sends (`EVENT`, `EOSE`, `OK`,
//! `NOTICE`, `CLOSED`) and writing what a client sends (`REQ`, `EVENT`, `CLOSE`). A relay is
//! untrusted: a message longer than [`MAX_RELAY_MESSAGE`] is refused before it is parsed, an
//! `EVENT` is returned only with a verified event, and a message type this client does not
//! use (`AUTH`, `COUNT`, anything new) is [`RelayMessage::Other`], to be ignored.

use serde_json::{json, Value};
use url::Url;

use super::event::{Event, EventError, EventId, PublicKey};

/// A relay as logs, errors and Debug show it: scheme, host and port only. A relay URL may
/// carry credentials (`wss://user:pass@…`) or a token in its path or query.
pub fn relay_label(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// The longest relay message read. NWC asks relays to carry 64 KiB payloads; a NIP-44
/// payload of that size is ~88 KiB of base64, plus the event around it.
pub const MAX_RELAY_MESSAGE: usize = 256 * 1024;
/// Subscription ids and relay messages are echoed into logs: cut to this many characters.
const MAX_TEXT: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayMessage {
    /// An event for a subscription; id and signature verified.
    Event {
        subscription: String,
        event: Box<Event>,
    },
    /// The stored events of a subscription have all been sent.
    Eose {
        subscription: String,
    },
    /// Whether the relay accepted an event we published.
    Ok {
        event_id: EventId,
        accepted: bool,
        message: String,
    },
    Notice {
        message: String,
    },
    /// The relay ended a subscription.
    Closed {
        subscription: String,
        message: String,
    },
    /// A message type this client does not use (its label, shortened); ignore it.
    Other {
        label: String,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RelayMessageError {
    #[error("relay message of {0} bytes is over the {max} byte limit", max = MAX_RELAY_MESSAGE)]
    TooLong(usize),
    #[error("relay message is not a JSON array with a type: {0}")]
    Shape(String),
    #[error("relay {label} message is malformed")]
    Malformed { label: &'static str },
    #[error("relay sent an invalid event: {0}")]
    Event(#[from] EventError),
}

/// Parses one message from a relay.
pub fn parse_relay_message(text: &str) -> Result<RelayMessage, RelayMessageError> {
    if text.len() > MAX_RELAY_MESSAGE {
        return Err(RelayMessageError::TooLong(text.len()));
    }
    // serde_json stops at 128 levels of nesting, so a deep array cannot exhaust the stack.
    let value: Value = serde_json::from_str(text)
        .map_err(|e| RelayMessageError::Shape(super::event::short_serde_error(&e)))?;
    let Value::Array(mut items) = value else {
        return Err(RelayMessageError::Shape("not an array".into()));
    };
    let label = match items.first() {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(RelayMessageError::Shape("no type label".into())),
    };
    let text_at = |items: &[Value], i: usize, label: &'static str| {
        items
            .get(i)
            .and_then(Value::as_str)
            .map(short)
            .ok_or(RelayMessageError::Malformed { label })
    };
    match label.as_str() {
        "EVENT" => {
            if items.len() != 3 {
                return Err(RelayMessageError::Malformed { label: "EVENT" });
            }
            let subscription = text_at(&items, 1, "EVENT")?;
            let event = Event::from_value(items.swap_remove(2))?;
            Ok(RelayMessage::Event {
                subscription,
                event: Box::new(event),
            })
        }
        "EOSE" => Ok(RelayMessage::Eose {
            subscription: text_at(&items, 1, "EOSE")?,
        }),
        "OK" => {
            let event_id = items
                .get(1)
                .and_then(Value::as_str)
                .and_then(EventId::from_hex)
                .ok_or(RelayMessageError::Malformed { label: "OK" })?;
            let accepted = items
                .get(2)
                .and_then(Value::as_bool)
                .ok_or(RelayMessageError::Malformed { label: "OK" })?;
            // The message is optional in older relays.
            let message = items
                .get(3)
                .and_then(Value::as_str)
                .map(short)
                .unwrap_or_default();
            Ok(RelayMessage::Ok {
                event_id,
                accepted,
                message,
            })
        }
        "NOTICE" => Ok(RelayMessage::Notice {
            message: text_at(&items, 1, "NOTICE")?,
        }),
        "CLOSED" => Ok(RelayMessage::Closed {
            subscription: text_at(&items, 1, "CLOSED")?,
            message: items
                .get(2)
                .and_then(Value::as_str)
                .map(short)
                .unwrap_or_default(),
        }),
        _ => Ok(RelayMessage::Other {
            label: short(&label),
        }),
    }
}

/// At most [`MAX_TEXT`] characters of relay-chosen text.
fn short(s: &str) -> String {
    s.chars().take(MAX_TEXT).collect()
}

/// What a subscription asks for (the subset of NIP-01 filters NWC uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub kinds: Vec<u16>,
    pub authors: Vec<PublicKey>,
    /// `#p`: events that tag these keys.
    pub p_tags: Vec<PublicKey>,
    /// `#e`: events that tag these events.
    pub e_tags: Vec<EventId>,
    pub since: Option<u64>,
    pub limit: Option<u32>,
}

impl Filter {
    fn to_value(&self) -> Value {
        let mut f = serde_json::Map::new();
        if !self.kinds.is_empty() {
            f.insert("kinds".into(), json!(self.kinds));
        }
        let hexes = |keys: &[PublicKey]| keys.iter().map(PublicKey::to_hex).collect::<Vec<_>>();
        if !self.authors.is_empty() {
            f.insert("authors".into(), json!(hexes(&self.authors)));
        }
        if !self.p_tags.is_empty() {
            f.insert("#p".into(), json!(hexes(&self.p_tags)));
        }
        if !self.e_tags.is_empty() {
            let ids: Vec<String> = self.e_tags.iter().map(EventId::to_hex).collect();
            f.insert("#e".into(), json!(ids));
        }
        if let Some(since) = self.since {
            f.insert("since".into(), json!(since));
        }
        if let Some(limit) = self.limit {
            f.insert("limit".into(), json!(limit));
        }
        Value::Object(f)
    }
}

/// `["REQ", <subscription>, <filter>...]`
pub fn req_message(subscription: &str, filters: &[Filter]) -> String {
    let mut items = vec![json!("REQ"), json!(subscription)];
    items.extend(filters.iter().map(Filter::to_value));
    Value::Array(items).to_string()
}

/// `["EVENT", <event>]`: publish.
pub fn event_message(event: &Event) -> String {
    json!(["EVENT", event.to_value()]).to_string()
}

/// `["CLOSE", <subscription>]`
pub fn close_message(subscription: &str) -> String {
    json!(["CLOSE", subscription]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nostr::event::{Keys, UnsignedEvent};

    fn signed() -> Event {
        UnsignedEvent {
            created_at: 1_700_000_000,
            kind: 23195,
            tags: vec![vec!["e".into(), "00".repeat(32)]],
            content: "payload".into(),
        }
        .sign(&Keys::generate())
        .unwrap()
    }

    #[test]
    fn each_relay_message_type_parses() {
        let ev = signed();
        let text = format!(r#"["EVENT","nwc",{}]"#, ev.to_value());
        assert_eq!(
            parse_relay_message(&text).unwrap(),
            RelayMessage::Event {
                subscription: "nwc".into(),
                event: Box::new(ev.clone())
            }
        );
        assert_eq!(
            parse_relay_message(r#"["EOSE","nwc"]"#).unwrap(),
            RelayMessage::Eose {
                subscription: "nwc".into()
            }
        );
        let ok = format!(r#"["OK","{}",false,"blocked: no"]"#, ev.id());
        assert_eq!(
            parse_relay_message(&ok).unwrap(),
            RelayMessage::Ok {
                event_id: ev.id(),
                accepted: false,
                message: "blocked: no".into()
            }
        );
        assert_eq!(
            parse_relay_message(r#"["NOTICE","slow down"]"#).unwrap(),
            RelayMessage::Notice {
                message: "slow down".into()
            }
        );
        assert_eq!(
            parse_relay_message(r#"["CLOSED","nwc","auth-required: x"]"#).unwrap(),
            RelayMessage::Closed {
                subscription: "nwc".into(),
                message: "auth-required: x".into()
            }
        );
        assert_eq!(
            parse_relay_message(r#"["AUTH","challenge"]"#).unwrap(),
            RelayMessage::Other {
                label: "AUTH".into()
            }
        );
    }

    #[test]
    fn hostile_or_malformed_messages_are_errors_not_panics() {
        let ev = signed();
        let mut forged = ev.to_value();
        forged["content"] = "paid".into();
        let cases = [
            "".to_string(),
            "{}".into(),
            "[]".into(),
            "[1]".into(),
            r#"["EVENT"]"#.into(),
            r#"["EVENT","s"]"#.into(),
            r#"["EVENT","s",{}]"#.into(),
            r#"["EVENT",1,{}]"#.into(),
            format!(r#"["EVENT","s",{},1]"#, ev.to_value()),
            format!(r#"["EVENT","s",{forged}]"#),
            r#"["EOSE"]"#.into(),
            r#"["OK","zz",true,""]"#.into(),
            format!(r#"["OK","{}","yes",""]"#, ev.id()),
            r#"["NOTICE",5]"#.into(),
            "[".repeat(10_000),
            format!("[\"NOTICE\",\"{}\"]", "a".repeat(MAX_RELAY_MESSAGE)),
        ];
        for case in cases {
            assert!(parse_relay_message(&case).is_err(), "{case:.60}");
        }
        assert!(matches!(
            parse_relay_message(&format!(r#"["EVENT","s",{forged}]"#)),
            Err(RelayMessageError::Event(EventError::IdMismatch))
        ));
        // Relay-chosen text is shortened.
        let long = format!("[\"NOTICE\",\"{}\"]", "b".repeat(10_000));
        let RelayMessage::Notice { message } = parse_relay_message(&long).unwrap() else {
            panic!("a notice")
        };
        assert_eq!(message.len(), MAX_TEXT);
    }

    #[test]
    fn client_messages_are_nip01_arrays() {
        let k = Keys::generate().public_key();
        let f = Filter {
            kinds: vec![23195],
            authors: vec![k],
            p_tags: vec![k],
            since: Some(5),
            ..Filter::default()
        };
        let req: Value = serde_json::from_str(&req_message("nwc", &[f])).unwrap();
        assert_eq!(
            req,
            json!(["REQ", "nwc", {"kinds": [23195], "authors": [k.to_hex()],
                   "#p": [k.to_hex()], "since": 5}])
        );
        assert_eq!(close_message("nwc"), r#"["CLOSE","nwc"]"#);
        let ev = signed();
        let sent: Value = serde_json::from_str(&event_message(&ev)).unwrap();
        assert_eq!(
            Event::from_value(sent[1].clone()).unwrap(),
            ev,
            "a published event verifies at the other end"
        );
    }
}
