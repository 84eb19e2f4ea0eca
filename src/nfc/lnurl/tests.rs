use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::*;
use crate::nfc::{pay_with_card, send_with_pin, CardStep};

const P: &str = "4E2E289D945A66BB13377A728884E867";
const C: &str = "E19CCB1FED8892CE";
const K1: &str = "k1-secret-0123456789abcdef";

fn wr(min: u64, max: u64, extra: &str) -> String {
    format!(
        r#"{{"tag":"withdrawRequest","callback":"https://card.example/cb","k1":"{K1}",
            "defaultDescription":"x","minWithdrawable":{min},"maxWithdrawable":{max}{extra}}}"#
    )
}

#[test]
fn a_withdraw_request_is_parsed_with_its_limits() {
    let r = parse_withdraw_request(wr(1000, 50_000, "").as_bytes(), "h").unwrap();
    assert_eq!(r.callback.as_str(), "https://card.example/cb");
    assert_eq!(r.k1.expose(), K1);
    assert_eq!(
        (r.min, r.max),
        (Msat::from_msat(1000), Msat::from_msat(50_000))
    );
    assert_eq!(r.pin_limit, None);
    assert!(r.check_price(Msat::from_msat(50_000)).is_ok());
    assert!(r.check_price(Msat::from_msat(1000)).is_ok());
    assert!(matches!(
        r.check_price(Msat::from_msat(50_001)),
        Err(LnurlError::OverLimit { .. })
    ));
    assert!(r.check_price(Msat::from_msat(999)).is_err());
    let pin =
        parse_withdraw_request(wr(0, 90_000, r#","pinLimit":20000"#).as_bytes(), "h").unwrap();
    assert!(pin.needs_pin(Msat::from_msat(20_000)));
    assert!(!pin.needs_pin(Msat::from_msat(19_999)));
}

#[test]
fn a_service_error_is_declined_with_a_screen_safe_reason() {
    let e = parse_withdraw_request(
        br#"{"status":"ERROR","reason":"This link is already used."}"#,
        "h",
    );
    assert_eq!(
        e,
        Err(LnurlError::Declined {
            reason: "This link is already used.".into()
        })
    );
    let long = format!(
        r#"{{"status":"ERROR","reason":"a\u0007b{}"}}"#,
        "x".repeat(500)
    );
    match parse_withdraw_request(long.as_bytes(), "h") {
        Err(LnurlError::Declined { reason }) => {
            assert_eq!(reason.chars().count(), MAX_REASON_CHARS);
            assert!(reason.starts_with("abx"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_callback_reply(br#"{"status":"ERROR","reason":42}"#, "h"),
        Err(LnurlError::Declined {
            reason: "no reason given".into()
        })
    );
    assert_eq!(parse_callback_reply(br#"{"status":"OK"}"#, "h"), Ok(()));
}

#[test]
fn malformed_withdraw_requests_are_bad_replies() {
    for body in [
        "not json".to_string(),
        "[]".to_string(),
        r#"{"status":"OK"}"#.to_string(),
        wr(1000, 50_000, "").replace("withdrawRequest", "payRequest"),
        wr(1000, 50_000, "").replace("https://card.example/cb", "not a url"),
        wr(1000, 50_000, "").replace(K1, ""),
        wr(60_000, 50_000, ""),
        wr(1000, 50_000, "").replace("50000", "-5"),
        wr(1000, 50_000, "").replace("50000", "5.5"),
        wr(1000, 50_000, "").replace("50000", "\"50000\""),
        wr(1000, 50_000, r#","pinLimit":"x""#),
    ] {
        assert!(
            matches!(
                parse_withdraw_request(body.as_bytes(), "h"),
                Err(LnurlError::BadReply { .. })
            ),
            "{body}"
        );
    }
    assert!(matches!(
        parse_callback_reply(br#"{"status":"PENDING"}"#, "h"),
        Err(LnurlError::BadReply { .. })
    ));
}

#[test]
fn internal_addresses_are_recognised() {
    for ip in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.10",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "::1",
        "::",
        "fd00::1",
        "fe80::1",
        "::ffff:192.168.1.1",
        "::ffff:127.0.0.1",
        "64:ff9b::a00:1",
    ] {
        assert!(is_internal(ip.parse().unwrap()), "{ip}");
    }
    for ip in [
        "1.1.1.1",
        "93.184.216.34",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
    ] {
        assert!(!is_internal(ip.parse().unwrap()), "{ip}");
    }
}

/// Each request that reached the service: its route and query.
type Seen = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;

/// A local LNURL-withdraw service that records every request's query.
#[derive(Clone, Default)]
struct Service {
    seen: Seen,
    base: Arc<Mutex<String>>,
    min: u64,
    max: u64,
    pin_limit: Option<u64>,
}

async fn scan(State(s): State<Service>, Query(q): Query<HashMap<String, String>>) -> Response {
    s.seen.lock().unwrap().push(("scan".into(), q));
    let base = s.base.lock().unwrap().clone();
    let pin = s
        .pin_limit
        .map(|l| format!(r#","pinLimit":{l}"#))
        .unwrap_or_default();
    let body = wr(s.min, s.max, &pin).replace("https://card.example/cb", &format!("{base}/cb?x=1"));
    body.into_response()
}

async fn cb(State(s): State<Service>, Query(q): Query<HashMap<String, String>>) -> Response {
    s.seen.lock().unwrap().push(("cb".into(), q));
    r#"{"status":"OK"}"#.into_response()
}

async fn serve(svc: Service, extra: Router<Service>) -> String {
    let app = Router::new()
        .route("/scan", get(scan))
        .route("/cb", get(cb))
        .merge(extra)
        .with_state(svc.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    *svc.base.lock().unwrap() = base.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    base
}

fn card(base: &str) -> CardUrl {
    let uri = format!("{}/scan?p={P}&c={C}", base.replacen("http", "lnurlw", 1));
    CardUrl::from_card_uri(&uri, true).unwrap()
}

fn local_rules() -> SafeGet {
    SafeGet::new(&NfcConfig {
        allow_insecure_http: true,
        allow_private_hosts: true,
        request_timeout_ms: 2000,
        ..NfcConfig::default()
    })
    .unwrap()
}

fn service() -> Service {
    Service {
        min: 1000,
        max: 100_000_000,
        ..Service::default()
    }
}

#[tokio::test]
async fn a_good_tap_sends_the_invoice_on_screen_with_k1() {
    let svc = service();
    let base = serve(svc.clone(), Router::new()).await;
    let step = pay_with_card(
        &local_rules(),
        &card(&base),
        "lnbc1invoiceonscreen",
        Msat::from_msat(21_000),
    )
    .await
    .unwrap();
    assert_eq!(step, CardStep::Sent);
    let seen = svc.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].1["p"], P);
    assert_eq!(seen[0].1["c"], C);
    assert_eq!(seen[1].0, "cb");
    assert_eq!(seen[1].1["k1"], K1);
    assert_eq!(seen[1].1["pr"], "lnbc1invoiceonscreen");
    assert_eq!(seen[1].1["x"], "1", "the callback's own query is kept");
    assert!(!seen[1].1.contains_key("pin"));
}

#[tokio::test]
async fn a_price_over_the_card_limit_sends_nothing() {
    let svc = Service {
        max: 20_000,
        ..service()
    };
    let base = serve(svc.clone(), Router::new()).await;
    let r = pay_with_card(
        &local_rules(),
        &card(&base),
        "lnbc1x",
        Msat::from_msat(21_000),
    )
    .await;
    assert!(matches!(r, Err(LnurlError::OverLimit { .. })), "{r:?}");
    assert_eq!(svc.seen.lock().unwrap().len(), 1, "no callback");
}

#[tokio::test]
async fn a_pin_card_asks_for_the_pin_and_sends_it_with_the_invoice() {
    let svc = Service {
        pin_limit: Some(10_000),
        ..service()
    };
    let base = serve(svc.clone(), Router::new()).await;
    let rules = local_rules();
    let step = pay_with_card(&rules, &card(&base), "lnbc1x", Msat::from_msat(21_000))
        .await
        .unwrap();
    let CardStep::NeedsPin(req) = step else {
        panic!("{step:?}")
    };
    assert_eq!(
        svc.seen.lock().unwrap().len(),
        1,
        "nothing sent before the PIN"
    );
    send_with_pin(&rules, &req, "lnbc1x", &Secret::new("1234"))
        .await
        .unwrap();
    let seen = svc.seen.lock().unwrap().clone();
    assert_eq!(seen[1].1["pin"], "1234");
    assert_eq!(seen[1].1["pr"], "lnbc1x");
    // Below the PIN limit no PIN is asked.
    let step = pay_with_card(&rules, &card(&base), "lnbc1y", Msat::from_msat(9_000))
        .await
        .unwrap();
    assert_eq!(step, CardStep::Sent);
}

#[tokio::test]
async fn a_private_address_is_refused_before_any_request() {
    let svc = service();
    let base = serve(svc.clone(), Router::new()).await;
    let strict = SafeGet::new(&NfcConfig {
        allow_insecure_http: true,
        ..NfcConfig::default()
    })
    .unwrap();
    let r = pay_with_card(&strict, &card(&base), "lnbc1x", Msat::from_msat(21_000)).await;
    match r {
        Err(LnurlError::Refused { why, .. }) => assert!(why.contains("127.0.0.1"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A name that resolves to loopback is refused too, unless it is on the allow-list.
    let by_name = card(&base.replace("127.0.0.1", "localhost"));
    let r = pay_with_card(&strict, &by_name, "lnbc1x", Msat::from_msat(21_000)).await;
    assert!(matches!(r, Err(LnurlError::Refused { .. })), "{r:?}");
    assert!(
        svc.seen.lock().unwrap().is_empty(),
        "the service was never contacted"
    );
    let listed = SafeGet::new(&NfcConfig {
        allow_insecure_http: true,
        // The service's callback names 127.0.0.1: each host is checked on its own.
        allow_hosts: vec!["localhost".into(), "127.0.0.1".into()],
        ..NfcConfig::default()
    })
    .unwrap();
    let r = pay_with_card(&listed, &by_name, "lnbc1x", Msat::from_msat(21_000)).await;
    assert_eq!(r, Ok(CardStep::Sent));
}

#[tokio::test]
async fn plain_http_is_refused_without_the_test_switch() {
    let svc = service();
    let base = serve(svc.clone(), Router::new()).await;
    let no_http = SafeGet::new(&NfcConfig {
        allow_private_hosts: true,
        ..NfcConfig::default()
    })
    .unwrap();
    let r = pay_with_card(&no_http, &card(&base), "lnbc1x", Msat::from_msat(21_000)).await;
    assert!(matches!(r, Err(LnurlError::Refused { .. })), "{r:?}");
    assert!(svc.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_callback_pointing_at_a_private_address_is_refused() {
    // A public-looking withdrawRequest whose callback aims into the LAN: the callback is
    // checked like the card's own URL.
    let rules = SafeGet::new(&NfcConfig::default()).unwrap();
    let req = parse_withdraw_request(
        wr(0, 100_000, "")
            .replace("https://card.example/cb", "https://192.168.1.1/admin")
            .as_bytes(),
        "h",
    )
    .unwrap();
    let r = rules.callback(&req, "lnbc1x", None).await;
    assert!(matches!(r, Err(LnurlError::Refused { .. })), "{r:?}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let svc = service();
    let extra = Router::new().route(
        "/moved",
        get(|| async { axum::response::Redirect::temporary("/scan") }),
    );
    let base = serve(svc.clone(), extra).await;
    let moved = CardUrl::from_card_uri(
        &format!("{}/moved?p={P}&c={C}", base.replacen("http", "lnurlw", 1)),
        true,
    )
    .unwrap();
    let r = pay_with_card(&local_rules(), &moved, "lnbc1x", Msat::from_msat(21_000)).await;
    assert!(matches!(r, Err(LnurlError::BadReply { .. })), "{r:?}");
    assert!(
        svc.seen.lock().unwrap().is_empty(),
        "the redirect target was not fetched"
    );
}

#[tokio::test]
async fn an_oversized_reply_is_refused() {
    let svc = service();
    let extra = Router::new().route(
        "/huge",
        get(|| async {
            // No Content-Length: a stream that just keeps going.
            let chunk = bytes_chunk();
            let s = futures_util::stream::iter(
                std::iter::repeat_n(chunk, 40).map(Ok::<_, std::io::Error>),
            );
            axum::body::Body::from_stream(s)
        }),
    );
    let base = serve(svc, extra).await;
    let huge = CardUrl::from_card_uri(
        &format!("{}/huge?p={P}&c={C}", base.replacen("http", "lnurlw", 1)),
        true,
    )
    .unwrap();
    let r = pay_with_card(&local_rules(), &huge, "lnbc1x", Msat::from_msat(21_000)).await;
    match r {
        Err(LnurlError::BadReply { why, .. }) => assert!(why.contains("65536"), "{why}"),
        other => panic!("{other:?}"),
    }
}

fn bytes_chunk() -> Vec<u8> {
    vec![b' '; 8 << 10]
}

#[tokio::test]
async fn a_service_that_never_answers_is_unreachable_within_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and holds connections without a word.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let rules = SafeGet::new(&NfcConfig {
        allow_insecure_http: true,
        allow_private_hosts: true,
        request_timeout_ms: 500,
        ..NfcConfig::default()
    })
    .unwrap();
    let silent = card(&format!("http://{addr}"));
    let started = std::time::Instant::now();
    let r = pay_with_card(&rules, &silent, "lnbc1x", Msat::from_msat(21_000)).await;
    assert!(matches!(r, Err(LnurlError::Unreachable { .. })), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A service that is down (nothing listening) is unreachable too.
    drop(rules);
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = card(&format!("http://{}", closed.local_addr().unwrap()));
    drop(closed);
    let r = pay_with_card(&local_rules(), &down, "lnbc1x", Msat::from_msat(21_000)).await;
    assert!(matches!(r, Err(LnurlError::Unreachable { .. })), "{r:?}");
}

#[tokio::test]
async fn no_error_or_debug_output_shows_p_c_or_k1() {
    let svc = Service {
        min: 0,
        max: 1,
        ..service()
    };
    let base = serve(svc, Router::new()).await;
    let c = card(&base);
    let rules = local_rules();
    let req = rules.withdraw_request(&c).await.unwrap();
    let mut shown = vec![format!("{c:?}"), format!("{c}"), format!("{req:?}")];
    let over = pay_with_card(&rules, &c, "lnbc1x", Msat::from_msat(21_000))
        .await
        .unwrap_err();
    shown.push(format!("{over:?}"));
    shown.push(over.to_string());
    let strict = SafeGet::new(&NfcConfig::default()).unwrap();
    let refused = strict.withdraw_request(&c).await.unwrap_err();
    shown.push(format!("{refused:?}"));
    shown.push(refused.to_string());
    for s in shown {
        for secret in [P, C, K1] {
            assert!(!s.contains(secret), "{s}");
        }
    }
}

/// The peer address of every request that reached a service, by route.
type Peers = Arc<Mutex<Vec<(&'static str, std::net::SocketAddr)>>>;

/// A service on `ip` whose callback is on `callback_base` (filled in once known).
async fn peer_service(ip: &str, peers: Peers, callback_base: Arc<Mutex<String>>) -> String {
    use axum::extract::ConnectInfo;
    let (p1, p2) = (peers.clone(), peers);
    let app = Router::new()
        .route(
            "/scan",
            get(
                move |ConnectInfo(a): ConnectInfo<std::net::SocketAddr>| async move {
                    p1.lock().unwrap().push(("scan", a));
                    let cb = format!("{}/cb", callback_base.lock().unwrap());
                    wr(1000, 100_000_000, "").replace("https://card.example/cb", &cb)
                },
            ),
        )
        .route(
            "/cb",
            get(
                move |ConnectInfo(a): ConnectInfo<std::net::SocketAddr>| async move {
                    p2.lock().unwrap().push(("cb", a));
                    r#"{"status":"OK"}"#
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .ok()
    });
    base
}

#[tokio::test]
async fn the_callback_on_the_cards_own_host_reuses_its_connection() {
    // Across the internet a connection costs a TCP and a TLS handshake: a card payment
    // makes one, not two, when the callback is on the card URL's host (as Bolt Card
    // services put it).
    let peers = Peers::default();
    let cb_base = Arc::new(Mutex::new(String::new()));
    let base = peer_service("127.0.0.1", peers.clone(), cb_base.clone()).await;
    *cb_base.lock().unwrap() = base.clone();
    let step = pay_with_card(
        &local_rules(),
        &card(&base),
        "lnbc1x",
        Msat::from_msat(21_000),
    )
    .await
    .unwrap();
    assert_eq!(step, CardStep::Sent);
    let seen = peers.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].1, seen[1].1, "one connection for both requests");

    // A callback on another host gets its own connection, checked on its own: with the
    // private-address switch off and only the card's host allowed, it is refused.
    let peers = Peers::default();
    let other = peer_service("127.0.0.2", peers.clone(), Arc::default()).await;
    let cb_base = Arc::new(Mutex::new(other));
    let base = peer_service("127.0.0.1", peers.clone(), cb_base).await;
    let rules = SafeGet::new(&NfcConfig {
        allow_insecure_http: true,
        allow_hosts: vec!["127.0.0.1".into()],
        request_timeout_ms: 2000,
        ..NfcConfig::default()
    })
    .unwrap();
    let r = pay_with_card(&rules, &card(&base), "lnbc1x", Msat::from_msat(21_000)).await;
    assert!(matches!(r, Err(LnurlError::Refused { .. })), "{r:?}");
    let seen = peers.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "the withdrawRequest only: {seen:?}");
}

/// LNbits' Bolt Cards extension puts `k1` in the callback's path, and a card's tap URL may
/// carry its id in the path: `Debug` and `Display` show a card service's URLs as scheme and
/// host only.
#[test]
fn a_k1_in_the_callbacks_path_never_shows_in_debug_output() {
    let body = format!(
        r#"{{"tag":"withdrawRequest","callback":"https://card.example/boltcards/api/v1/lnurl/cb/{K1}",
            "k1":"{K1}","minWithdrawable":1000,"maxWithdrawable":50000}}"#
    );
    let req = parse_withdraw_request(body.as_bytes(), "card.example").unwrap();
    let shown = format!("{req:?}");
    assert!(!shown.contains(K1), "{shown}");
    assert!(shown.contains("https://card.example"), "{shown}");
    let card = CardUrl::from_card_uri(
        &format!("lnurlw://card.example/boltcards/api/v1/scan/{K1}?p={P}&c={C}"),
        false,
    )
    .unwrap();
    for shown in [format!("{card:?}"), card.to_string()] {
        for secret in [K1, P, C] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.starts_with("https://card.example"), "{shown}");
    }
}
