//! NIP-47 against a wallet service played by the test: it holds the wallet key, reads our
//! requests and signs its own replies, so every check of the client is exercised both ways.

use super::*;
use crate::money::Msat;
use crate::nostr::event::Keys;
use crate::nostr::nip04::SharedKey;
use crate::secret::Secret;
use serde_json::json;

mod encryption;

/// The connection string printed in NIP-47.
const NIP47_URI: &str = "nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4?relay=wss%3A%2F%2Frelay.damus.io&secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c";
const NIP47_SECRET: &str = "71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c";
const CLIENT_SECRET: &str = "00000000000000000000000000000000000000000000000000000000000000c1";

struct Wallet {
    keys: Keys,
}

impl Wallet {
    fn new() -> Wallet {
        Wallet {
            keys: Keys::from_secret(&Secret::new(format!("{:064x}", 0xa11e7u32))).unwrap(),
        }
    }

    fn connection(&self) -> Connection {
        Connection::parse(&format!(
            "nostr+walletconnect://{}?relay=wss://relay.example&secret={CLIENT_SECRET}",
            self.keys.public_key()
        ))
        .unwrap()
    }

    fn conversation(&self, conn: &Connection) -> ConversationKey {
        ConversationKey::new(&self.keys, &conn.client())
    }

    fn event(&self, kind: u16, tags: Vec<Vec<String>>, content: String) -> Event {
        UnsignedEvent {
            created_at: 1_700_000_100,
            kind,
            tags,
            content,
        }
        .sign(&self.keys)
        .unwrap()
    }

    /// A kind 23195 reply tagged for `conn` and `request`, NIP-44 encrypted.
    fn reply(&self, conn: &Connection, request: EventId, body: &Value) -> Event {
        let content = nip44::encrypt(&self.conversation(conn), &body.to_string()).unwrap();
        self.event(
            KIND_RESPONSE,
            vec![
                vec!["p".into(), conn.client().to_hex()],
                vec!["e".into(), request.to_hex()],
            ],
            content,
        )
    }
}

fn preimage() -> Preimage {
    Preimage::new([0x42; 32])
}

fn lookup(conn: &Connection) -> SentRequest {
    let request = Request::LookupInvoice {
        payment_hash: preimage().payment_hash(),
    };
    conn.request(&request, Encryption::Nip44V2, 1_700_000_000, None)
        .unwrap()
}

fn settled_tx() -> Value {
    json!({
        "type": "incoming", "state": "settled", "invoice": "lnbc10n1...",
        "payment_hash": preimage().payment_hash().to_hex(),
        "preimage": preimage().expose_hex(),
        "amount": 21000, "fees_paid": 0, "created_at": 1_700_000_000u64,
        "settled_at": 1_700_000_050u64, "metadata": {}
    })
}

#[test]
fn the_nip47_example_uri_parses_and_never_shows_its_secret() {
    let c = Connection::parse(NIP47_URI).unwrap();
    assert_eq!(
        c.wallet().to_hex(),
        "b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4"
    );
    assert_eq!(c.relays().len(), 1);
    assert_eq!(c.relays()[0].as_str(), "wss://relay.damus.io/");
    assert_eq!(c.secret().expose(), NIP47_SECRET);
    let expected = Keys::from_secret(&Secret::new(NIP47_SECRET)).unwrap();
    assert_eq!(c.client(), expected.public_key());
    assert_eq!(c.lud16(), None);
    let shown = format!("{c:?}");
    assert!(!shown.contains(NIP47_SECRET), "{shown}");
    assert!(shown.contains("b889ff5b"));
}

#[test]
fn uri_variants_wallets_write_are_accepted() {
    let w = Wallet::new().keys.public_key();
    let uri = format!(
        "NOSTR+WALLETCONNECT:{w}/?relay=wss://a.example&relay=wss%3A%2F%2Fb.example%2Fnwc\
         &relay=wss://a.example&secret={}&lud16=shop%40example.com&pubkey=ignored",
        CLIENT_SECRET.to_uppercase()
    );
    let c = Connection::parse(&uri).unwrap();
    assert_eq!(c.wallet(), w);
    let relays: Vec<&str> = c.relays().iter().map(|u| u.as_str()).collect();
    assert_eq!(relays, ["wss://a.example/", "wss://b.example/nwc"]);
    assert_eq!(c.lud16(), Some("shop@example.com"));
    assert_eq!(c.secret().expose(), CLIENT_SECRET);
}

#[test]
fn bad_uris_are_refused_without_echoing_the_secret() {
    let w = Wallet::new().keys.public_key();
    let s = NIP47_SECRET;
    let too_many: String = (0..=MAX_RELAYS)
        .map(|i| format!("relay=wss://r{i}.example&"))
        .collect();
    let cases = [
        (
            format!("https://{w}?relay=wss://r.example&secret={s}"),
            UriError::Scheme,
        ),
        (
            format!("nostr+walletconnect://{s}x?relay=wss://r.example&secret={s}"),
            UriError::WalletKey(crate::nostr::KeyError::PublicFormat),
        ),
        (
            format!("nostr+walletconnect://{w}?secret={s}"),
            UriError::NoRelay,
        ),
        (
            format!("nostr+walletconnect://{w}?relay=https://r.example&secret={s}"),
            UriError::BadRelay { position: 1 },
        ),
        (
            format!("nostr+walletconnect://{w}?{too_many}secret={s}"),
            UriError::TooManyRelays,
        ),
        (
            format!("nostr+walletconnect://{w}?relay=wss://r.example"),
            UriError::NoSecret,
        ),
        (
            format!("nostr+walletconnect://{w}?relay=wss://r.example&secret={s}&secret={s}"),
            UriError::DuplicateSecret,
        ),
        (
            format!("nostr+walletconnect://{w}?relay=wss://r.example&secret={s}ab"),
            UriError::BadSecret(crate::nostr::KeyError::SecretFormat),
        ),
        (
            format!(
                "nostr+walletconnect://{w}?relay=wss://r.example&secret={}",
                "f".repeat(64)
            ),
            UriError::BadSecret(crate::nostr::KeyError::SecretRange),
        ),
        (
            format!("nostr+walletconnect://{w}?relay=wss://r.example&secret={s}&lud16={s}"),
            UriError::BadLud16,
        ),
        (
            format!("nostr+walletconnect://{w}?{}", "a".repeat(MAX_URI)),
            UriError::TooLong,
        ),
    ];
    for (uri, want) in cases {
        let err = Connection::parse(&uri).unwrap_err();
        assert_eq!(err, want, "{uri:.60}");
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(&s[..16]), "{shown}");
        }
    }
}

#[test]
fn the_info_event_says_what_the_wallet_offers() {
    let wallet = Wallet::new();
    let conn = wallet.connection();
    let content = "pay_invoice pay_keysend get_balance get_info make_invoice lookup_invoice \
                   list_transactions multi_pay_invoice multi_pay_keysend sign_message notifications";
    let tags = vec![
        vec!["encryption".into(), "nip44_v2 nip04".into()],
        vec![
            "notifications".into(),
            "payment_received payment_sent".into(),
        ],
    ];
    let info =
        WalletInfo::from_event(&conn, &wallet.event(KIND_INFO, tags, content.into())).unwrap();
    assert!(info.supports(Method::MakeInvoice) && info.supports(Method::LookupInvoice));
    assert!(!info.supports(Method::MakeHoldInvoice));
    assert_eq!(info.encryption(), Ok(Encryption::Nip44V2));
    assert!(info.notifies("payment_received"));
    assert!(!info.notifies("hold_invoice_accepted"));

    // No encryption tag: NIP-04 only.
    let legacy = wallet.event(KIND_INFO, vec![], "make_invoice".into());
    let info = WalletInfo::from_event(&conn, &legacy).unwrap();
    assert_eq!(info.encryption(), Ok(Encryption::Nip04));
    assert!(info.notifications.is_empty());
    let odd = wallet.event(
        KIND_INFO,
        vec![vec!["encryption".into(), "nip99".into()]],
        "".into(),
    );
    assert_eq!(
        WalletInfo::from_event(&conn, &odd).unwrap().encryption(),
        Err(NwcError::NoCommonEncryption)
    );
    // Someone else's info event, or another kind, is refused.
    let other = UnsignedEvent {
        created_at: 1,
        kind: KIND_INFO,
        tags: vec![],
        content: "make_invoice".into(),
    }
    .sign(&Keys::generate())
    .unwrap();
    assert_eq!(
        WalletInfo::from_event(&conn, &other),
        Err(NwcError::NotFromWallet)
    );
    let wrong = wallet.event(KIND_RESPONSE, vec![], "".into());
    assert!(matches!(
        WalletInfo::from_event(&conn, &wrong),
        Err(NwcError::Kind { .. })
    ));
}

#[test]
fn requests_are_encrypted_to_the_wallet_tagged_and_signed() {
    let wallet = Wallet::new();
    let conn = wallet.connection();
    let request = Request::MakeInvoice {
        amount: Msat::from_msat(21_000),
        description: Some("Cola 0.33 l".into()),
        expiry_secs: Some(600),
    };
    let sent = conn
        .request(
            &request,
            Encryption::Nip44V2,
            1_700_000_000,
            Some(1_700_000_060),
        )
        .unwrap();
    let ev = &sent.event;
    assert_eq!((ev.kind(), ev.pubkey()), (KIND_REQUEST, conn.client()));
    assert_eq!(
        ev.tags(),
        [
            vec!["p".to_string(), wallet.keys.public_key().to_hex()],
            vec!["encryption".into(), "nip44_v2".into()],
            vec!["expiration".into(), "1700000060".into()],
        ]
    );
    // It verifies at the relay and the wallet reads NIP-47's request shape.
    assert_eq!(&Event::from_value(ev.to_value()).unwrap(), ev);
    let plain = nip44::decrypt(&wallet.conversation(&conn), ev.content()).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&plain).unwrap(),
        json!({"method": "make_invoice",
               "params": {"amount": 21000, "description": "Cola 0.33 l", "expiry": 600}})
    );

    // NIP-04: no encryption tag, "?iv=" content.
    let settle = Request::SettleHoldInvoice {
        preimage: preimage(),
    };
    assert!(!format!("{settle:?}").contains(&preimage().expose_hex()));
    let sent = conn
        .request(&settle, Encryption::Nip04, 1_700_000_000, None)
        .unwrap();
    assert_eq!(sent.event.tags().len(), 1);
    let key = SharedKey::new(&wallet.keys, &conn.client());
    let plain = nip04::decrypt(&key, sent.event.content()).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&plain).unwrap(),
        json!({"method": "settle_hold_invoice", "params": {"preimage": preimage().expose_hex()}})
    );

    let hold = Request::MakeHoldInvoice {
        amount: Msat::from_msat(5000),
        description: None,
        expiry_secs: None,
        payment_hash: preimage().payment_hash(),
        min_cltv_expiry_delta: Some(144),
    };
    let sent = conn.request(&hold, Encryption::Nip44V2, 1, None).unwrap();
    let plain = nip44::decrypt(&wallet.conversation(&conn), sent.event.content()).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&plain).unwrap(),
        json!({"method": "make_hold_invoice", "params": {"amount": 5000,
               "payment_hash": preimage().payment_hash().to_hex(), "min_cltv_expiry_delta": 144}})
    );
}

#[test]
fn a_genuine_reply_is_opened_into_its_typed_result() {
    let wallet = Wallet::new();
    let conn = wallet.connection();
    let sent = lookup(&conn);
    let body = json!({"result_type": "lookup_invoice", "error": null, "result": settled_tx()});
    assert_eq!(
        answered_request(&wallet.reply(&conn, sent.id(), &body)),
        Some(sent.id())
    );
    let Reply::LookupInvoice(tx) = conn
        .open_response(&sent, &wallet.reply(&conn, sent.id(), &body))
        .unwrap()
    else {
        panic!("a lookup reply")
    };
    assert_eq!(tx.state, Some(InvoiceState::Settled));
    assert_eq!(tx.direction, Some(Direction::Incoming));
    assert_eq!(tx.amount, Msat::from_msat(21_000));
    assert_eq!(tx.payment_hash, preimage().payment_hash());
    assert_eq!(tx.preimage, Some(preimage()));
    assert!(!format!("{tx:?}").contains(&preimage().expose_hex()));

    // A state NIP-47 does not define is Unknown, never Settled.
    let mut odd = settled_tx();
    odd["state"] = "paid".into();
    let body = json!({"result_type": "lookup_invoice", "result": odd});
    let Ok(Reply::LookupInvoice(tx)) =
        conn.open_response(&sent, &wallet.reply(&conn, sent.id(), &body))
    else {
        panic!("a lookup reply")
    };
    assert_eq!(tx.state, Some(InvoiceState::Unknown));

    // NIP-47's cancel_hold_invoice reply, `"result": {}`.
    let cancel = conn
        .request(
            &Request::CancelHoldInvoice {
                payment_hash: preimage().payment_hash(),
            },
            Encryption::Nip44V2,
            1,
            None,
        )
        .unwrap();
    let body = json!({"result_type": "cancel_hold_invoice", "result": {}});
    assert_eq!(
        conn.open_response(&cancel, &wallet.reply(&conn, cancel.id(), &body)),
        Ok(Reply::CancelHoldInvoice)
    );
}

#[test]
fn the_nip47_error_example_becomes_a_typed_wallet_error() {
    let wallet = Wallet::new();
    let conn = wallet.connection();
    let pay_like = lookup(&conn);
    // NIP-47's example response: an error object (and a result, which is ignored).
    let body = json!({
        "result_type": "lookup_invoice",
        "error": {"code": "UNAUTHORIZED", "message": "human readable error message"},
        "result": {"preimage": "0123456789abcdef..."}
    });
    assert_eq!(
        conn.open_response(&pay_like, &wallet.reply(&conn, pay_like.id(), &body)),
        Err(NwcError::Wallet(WalletError {
            code: WalletErrorCode::Unauthorized,
            message: "human readable error message".into()
        }))
    );
    let body =
        json!({"result_type": "lookup_invoice", "error": {"code": "NOT_FOUND", "message": "x"}});
    assert!(matches!(
        conn.open_response(&pay_like, &wallet.reply(&conn, pay_like.id(), &body)),
        Err(NwcError::Wallet(WalletError {
            code: WalletErrorCode::NotFound,
            ..
        }))
    ));
}

#[test]
fn replies_that_fail_a_check_are_refused() {
    let wallet = Wallet::new();
    let conn = wallet.connection();
    let sent = lookup(&conn);
    let good = json!({"result_type": "lookup_invoice", "result": settled_tx()});
    let conv = wallet.conversation(&conn);
    let us = conn.client().to_hex();
    let id = sent.id().to_hex();
    let enc = |v: &Value| nip44::encrypt(&conv, &v.to_string()).unwrap();

    // Signed by someone else (who even knows the conversation key).
    let imposter = UnsignedEvent {
        created_at: 1,
        kind: KIND_RESPONSE,
        tags: vec![vec!["p".into(), us.clone()], vec!["e".into(), id.clone()]],
        content: enc(&good),
    }
    .sign(&Keys::generate())
    .unwrap();
    assert_eq!(
        conn.open_response(&sent, &imposter),
        Err(NwcError::NotFromWallet)
    );

    let other = Keys::generate().public_key().to_hex();
    let cases: Vec<(Event, NwcError)> = vec![
        (
            wallet.event(
                KIND_RESPONSE,
                vec![vec!["p".into(), other], vec!["e".into(), id.clone()]],
                enc(&good),
            ),
            NwcError::NotForUs,
        ),
        (
            wallet.event(
                KIND_RESPONSE,
                vec![vec!["e".into(), id.clone()]],
                enc(&good),
            ),
            NwcError::NotForUs,
        ),
        (
            wallet.event(
                KIND_RESPONSE,
                vec![
                    vec!["p".into(), us.clone()],
                    vec!["e".into(), "ab".repeat(32)],
                ],
                enc(&good),
            ),
            NwcError::NotOurRequest,
        ),
        (
            wallet.event(
                KIND_NOTIFICATION_NIP44,
                vec![vec!["p".into(), us.clone()], vec!["e".into(), id.clone()]],
                enc(&good),
            ),
            NwcError::Kind {
                expected: KIND_RESPONSE,
                got: KIND_NOTIFICATION_NIP44,
            },
        ),
        (
            wallet.event(
                KIND_RESPONSE,
                vec![vec!["p".into(), us.clone()], vec!["e".into(), id.clone()]],
                "not a payload".into(),
            ),
            NwcError::Nip44(Nip44Error::PayloadSize),
        ),
    ];
    for (event, want) in cases {
        assert_eq!(conn.open_response(&sent, &event), Err(want));
    }

    let mut bad_preimage = settled_tx();
    bad_preimage["preimage"] = hex::encode([7u8; 32]).into();
    let mut no_hash = settled_tx();
    no_hash["payment_hash"] = "xyz".into();
    let bodies = [
        (
            json!({"result_type": "make_invoice", "result": settled_tx()}),
            "ResultType",
        ),
        (json!({"result": settled_tx()}), "ResultType"),
        (json!({"result_type": "lookup_invoice"}), "NoResult"),
        (
            json!({"result_type": "lookup_invoice", "result": no_hash}),
            "payment_hash",
        ),
        (
            json!({"result_type": "lookup_invoice", "result": {"amount": -1}}),
            "transaction",
        ),
        (json!("just a string"), "ResultType"),
    ];
    for (body, want) in bodies {
        let err = conn
            .open_response(&sent, &wallet.reply(&conn, sent.id(), &body))
            .unwrap_err();
        assert!(format!("{err:?}").contains(want), "{err:?} for {body}");
    }
    // A preimage that is not the hash's (LNbits' nwcprovider sends 32 zero bytes when its
    // funding source has none) proves nothing: the reply opens, without it.
    let body = json!({"result_type": "lookup_invoice", "result": bad_preimage});
    match conn.open_response(&sent, &wallet.reply(&conn, sent.id(), &body)) {
        Ok(Reply::LookupInvoice(tx)) => {
            assert_eq!(
                tx.preimage, None,
                "a preimage that does not match is dropped"
            );
            assert_eq!(tx.payment_hash, preimage().payment_hash());
        }
        other => panic!("{other:?}"),
    }
    // Not JSON at all: the error gives a position, never the (secret-bearing) text.
    let ev = wallet.event(
        KIND_RESPONSE,
        vec![vec!["p".into(), us], vec!["e".into(), id]],
        nip44::encrypt(&conv, "preimage 4242 oops").unwrap(),
    );
    let err = conn.open_response(&sent, &ev).unwrap_err();
    assert!(matches!(err, NwcError::Json { .. }));
    assert!(!err.to_string().contains("4242"));
}

#[test]
fn notifications_are_wake_ups_carrying_only_a_payment_hash() {
    let wallet = Wallet::new();
    let conn = wallet.connection();
    let p = vec![vec!["p".to_string(), conn.client().to_hex()]];
    let body = json!({"notification_type": "payment_received", "notification": settled_tx()});
    let ev = wallet.event(
        KIND_NOTIFICATION_NIP44,
        p.clone(),
        nip44::encrypt(&wallet.conversation(&conn), &body.to_string()).unwrap(),
    );
    assert_eq!(
        conn.open_notification(&ev),
        Ok(Some(WakeUp {
            reason: WakeReason::PaymentReceived,
            payment_hash: preimage().payment_hash()
        }))
    );

    let nip04_key = SharedKey::new(&wallet.keys, &conn.client());
    let held = json!({"notification_type": "hold_invoice_accepted",
                      "notification": {"payment_hash": preimage().payment_hash().to_hex(), "amount": 1}});
    let ev = wallet.event(
        KIND_NOTIFICATION_NIP04,
        p.clone(),
        nip04::encrypt(&nip04_key, &held.to_string()).unwrap(),
    );
    assert_eq!(
        conn.open_notification(&ev).unwrap().map(|w| w.reason),
        Some(WakeReason::HoldInvoiceAccepted)
    );

    let sent = json!({"notification_type": "payment_sent", "notification": settled_tx()});
    let ev = wallet.event(
        KIND_NOTIFICATION_NIP44,
        p.clone(),
        nip44::encrypt(&wallet.conversation(&conn), &sent.to_string()).unwrap(),
    );
    assert_eq!(conn.open_notification(&ev), Ok(None));

    // The same checks as replies: author, p tag, kind, a hash to look up.
    let forged = UnsignedEvent {
        created_at: 1,
        kind: KIND_NOTIFICATION_NIP44,
        tags: p.clone(),
        content: nip44::encrypt(&wallet.conversation(&conn), &body.to_string()).unwrap(),
    }
    .sign(&Keys::generate())
    .unwrap();
    assert_eq!(
        conn.open_notification(&forged),
        Err(NwcError::NotFromWallet)
    );
    let untagged = wallet.event(KIND_NOTIFICATION_NIP44, vec![], "x".into());
    assert_eq!(conn.open_notification(&untagged), Err(NwcError::NotForUs));
    let wrong_kind = wallet.event(KIND_RESPONSE, p.clone(), "x".into());
    assert!(matches!(
        conn.open_notification(&wrong_kind),
        Err(NwcError::Kind { .. })
    ));
    let no_hash = json!({"notification_type": "payment_received", "notification": {}});
    let ev = wallet.event(
        KIND_NOTIFICATION_NIP44,
        p,
        nip44::encrypt(&wallet.conversation(&conn), &no_hash.to_string()).unwrap(),
    );
    assert!(matches!(
        conn.open_notification(&ev),
        Err(NwcError::InvalidResult(_))
    ));
}
