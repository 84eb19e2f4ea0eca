//! The LNURL-withdraw client (LUD-03) for a tapped Bolt Card: GET the card's URL, read its
//! `withdrawRequest`, check the price on screen against its limits, and hand the service the
//! BOLT11 already on screen through its callback.
//!
//! The URL comes from a card anyone can program, and the callback from whatever that URL
//! answered, so every request here goes through [`SafeGet`]: https only (plain http only
//! with the `allow_insecure_http` test switch), no redirects, a short timeout, a 64 KiB
//! reply cap, and no loopback, link-local or private address unless the config allows it.
//! The check is made on the addresses DNS gave, and the connection goes to exactly those
//! (no second lookup that a hostile DNS server could answer differently).
//!
//! The service's `{"status":"OK"}` only means it will try to pay: lnvend pours only when its
//! own payment backend says the invoice is paid. `k1` is a [`Secret`]; the card's `p`/`c`
//! stay inside [`CardUrl`]: neither appears in an error or a log line. A service's URLs are
//! shown as scheme and host only (in `Debug` too), since `k1` may be in the callback's path.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

use super::ndef::{redacted, CardUrl};
use crate::config::NfcConfig;
use crate::money::Msat;
use crate::secret::Secret;

/// The largest reply lnvend reads from a card's service: a withdrawRequest is a few hundred
/// bytes.
pub const MAX_REPLY: usize = 64 << 10;

/// The longest `reason` from a service that reaches the screen.
pub const MAX_REASON_CHARS: usize = 80;

/// Why a card payment did not get as far as the service accepting the invoice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LnurlError {
    /// The URL may not be fetched: not https, or a private address without the config's
    /// permission. Names the host, never the query.
    #[error("refused to contact {host}: {why}")]
    Refused { host: String, why: String },
    /// No answer: DNS, connection, TLS, timeout, a 5xx.
    #[error("{host} unreachable: {why}")]
    Unreachable { host: String, why: String },
    /// An answer that is not LNURL: a redirect, an oversized or malformed reply.
    #[error("{host} gave a bad reply: {why}")]
    BadReply { host: String, why: String },
    /// `{"status":"ERROR","reason":…}`: the service declined (replayed tap, wrong CMAC,
    /// limits, disabled card). `reason` is printable and at most [`MAX_REASON_CHARS`].
    #[error("declined: {reason}")]
    Declined { reason: String },
    /// The price lies outside the card's `minWithdrawable..=maxWithdrawable`.
    #[error("the price {price} is outside the card's limits {min}..={max}")]
    OverLimit { price: Msat, min: Msat, max: Msat },
}

/// A service's `withdrawRequest`, checked. `Debug` shows the callback as scheme and host
/// only: its path may hold `k1` (LNbits' Bolt Cards extension puts it there).
#[derive(Clone, PartialEq, Eq)]
pub struct WithdrawRequest {
    pub callback: url::Url,
    pub k1: Secret,
    pub min: Msat,
    pub max: Msat,
    /// LUD-21 draft: at or above this amount the service wants the card's PIN.
    pub pin_limit: Option<Msat>,
}

impl std::fmt::Debug for WithdrawRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithdrawRequest")
            .field("callback", &redacted(&self.callback))
            .field("k1", &self.k1)
            .field("min", &self.min)
            .field("max", &self.max)
            .field("pin_limit", &self.pin_limit)
            .finish()
    }
}

impl WithdrawRequest {
    /// Whether `price` may be withdrawn by this card.
    pub fn check_price(&self, price: Msat) -> Result<(), LnurlError> {
        if price < self.min || price > self.max {
            return Err(LnurlError::OverLimit {
                price,
                min: self.min,
                max: self.max,
            });
        }
        Ok(())
    }

    /// Whether paying `price` needs the card's PIN.
    pub fn needs_pin(&self, price: Msat) -> bool {
        self.pin_limit.is_some_and(|limit| price >= limit)
    }

    /// The callback URL with `k1`, `pr` and (for a PIN card) `pin`. Holds secrets: never log.
    fn callback_url(&self, bolt11: &str, pin: Option<&Secret>) -> url::Url {
        let mut url = self.callback.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("k1", self.k1.expose());
            q.append_pair("pr", bolt11);
            if let Some(pin) = pin {
                q.append_pair("pin", pin.expose());
            }
        }
        url
    }
}

/// The JSON of a withdrawRequest or an LNURL status, as read (everything optional, checked
/// in [`parse_withdraw_request`] so a hostile reply is an error, not a panic).
#[derive(Deserialize)]
struct RawReply {
    status: Option<String>,
    reason: Option<serde_json::Value>,
    tag: Option<String>,
    callback: Option<String>,
    k1: Option<String>,
    #[serde(rename = "minWithdrawable")]
    min_withdrawable: Option<serde_json::Value>,
    #[serde(rename = "maxWithdrawable")]
    max_withdrawable: Option<serde_json::Value>,
    #[serde(rename = "pinLimit")]
    pin_limit: Option<serde_json::Value>,
}

fn parse_raw(body: &[u8], host: &str) -> Result<RawReply, LnurlError> {
    let raw: RawReply = serde_json::from_slice(body).map_err(|_| LnurlError::BadReply {
        host: host.into(),
        why: "not an LNURL JSON object".into(),
    })?;
    if raw
        .status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("ERROR"))
    {
        return Err(LnurlError::Declined {
            reason: screen_reason(raw.reason.as_ref()),
        });
    }
    Ok(raw)
}

/// A service's `reason`, fit for the screen: printable, short, or a plain default.
fn screen_reason(reason: Option<&serde_json::Value>) -> String {
    let text = match reason {
        Some(serde_json::Value::String(s)) => s.as_str(),
        _ => "",
    };
    let clean: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON_CHARS)
        .collect();
    let clean = clean.trim();
    if clean.is_empty() {
        "no reason given".into()
    } else {
        clean.into()
    }
}

fn msat_field(v: Option<&serde_json::Value>, name: &str, host: &str) -> Result<Msat, LnurlError> {
    v.and_then(serde_json::Value::as_u64)
        .map(Msat::from_msat)
        .ok_or_else(|| LnurlError::BadReply {
            host: host.into(),
            why: format!("{name} is missing or not a whole number of msat"),
        })
}

/// Parses a withdrawRequest reply (or the service's ERROR).
pub fn parse_withdraw_request(body: &[u8], host: &str) -> Result<WithdrawRequest, LnurlError> {
    let raw = parse_raw(body, host)?;
    let bad = |why: &str| LnurlError::BadReply {
        host: host.into(),
        why: why.into(),
    };
    if raw.tag.as_deref() != Some("withdrawRequest") {
        return Err(bad("not a withdrawRequest"));
    }
    let callback = raw
        .callback
        .as_deref()
        .and_then(|c| url::Url::parse(c).ok())
        .ok_or_else(|| bad("callback is missing or not a URL"))?;
    let k1 = raw
        .k1
        .filter(|k| !k.is_empty() && k.len() <= 512)
        .ok_or_else(|| bad("k1 is missing"))?;
    let min = msat_field(raw.min_withdrawable.as_ref(), "minWithdrawable", host)?;
    let max = msat_field(raw.max_withdrawable.as_ref(), "maxWithdrawable", host)?;
    if min > max {
        return Err(bad("minWithdrawable is above maxWithdrawable"));
    }
    let pin_limit = match &raw.pin_limit {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(msat_field(Some(v), "pinLimit", host)?),
    };
    Ok(WithdrawRequest {
        callback,
        k1: Secret::new(k1),
        min,
        max,
        pin_limit,
    })
}

/// Parses the callback's reply: OK, or the service's ERROR.
pub fn parse_callback_reply(body: &[u8], host: &str) -> Result<(), LnurlError> {
    let raw = parse_raw(body, host)?;
    match raw.status.as_deref() {
        Some(s) if s.eq_ignore_ascii_case("OK") => Ok(()),
        _ => Err(LnurlError::BadReply {
            host: host.into(),
            why: "the callback's reply is neither OK nor ERROR".into(),
        }),
    }
}

/// True for addresses a stranger's URL must not reach without the operator's permission:
/// loopback, private, link-local, shared (CGNAT), unspecified, multicast, broadcast,
/// documentation and reserved ranges, and IPv6 forms that embed one of them.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] & 0xffc0) == 0xfec0 // old site-local fec0::/10
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                // NAT64 64:ff9b::/96 and IPv4-compatible ::a.b.c.d carry an IPv4 address.
                || (seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                    && is_internal_v4(Ipv4Addr::from(((seg[6] as u32) << 16) | seg[7] as u32)))
                || (seg[..6] == [0; 6]
                    && is_internal_v4(Ipv4Addr::from(((seg[6] as u32) << 16) | seg[7] as u32)))
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240 // reserved
}

/// The rules every request to a card's service follows (from `[nfc]`).
#[derive(Clone, Debug)]
pub struct SafeGet {
    pub allow_insecure_http: bool,
    pub allow_private_hosts: bool,
    pub allow_hosts: Vec<String>,
    pub timeout: Duration,
    tls: std::sync::Arc<rustls::ClientConfig>,
}

impl SafeGet {
    pub fn new(cfg: &NfcConfig) -> Result<SafeGet, LnurlError> {
        let tls = crate::backend::http::rustls_config(&Default::default()).map_err(|e| {
            LnurlError::Unreachable {
                host: "(TLS set-up)".into(),
                why: e.to_string(),
            }
        })?;
        Ok(SafeGet {
            allow_insecure_http: cfg.allow_insecure_http,
            allow_private_hosts: cfg.allow_private_hosts,
            allow_hosts: cfg.allow_hosts.clone(),
            timeout: cfg.request_timeout(),
            tls,
        })
    }

    /// Where `url` may be fetched: the addresses its host resolves to, all checked.
    pub async fn resolve(&self, url: &url::Url) -> Result<Vec<SocketAddr>, LnurlError> {
        let host = url.host_str().unwrap_or("").to_string();
        let refused = |why: &str| LnurlError::Refused {
            host: host.clone(),
            why: why.into(),
        };
        match url.scheme() {
            "https" => {}
            "http" if self.allow_insecure_http => {}
            other => return Err(refused(&format!("{other}:// is not allowed (https only)"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refused("a URL with credentials"));
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| refused("no port"))?;
        let addrs: Vec<SocketAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(url::Host::Domain(d)) => {
                let lookup = tokio::net::lookup_host((d, port));
                match tokio::time::timeout(self.timeout, lookup).await {
                    Ok(Ok(a)) => a.take(16).collect(),
                    Ok(Err(e)) => {
                        return Err(LnurlError::Unreachable {
                            host: host.clone(),
                            why: format!("DNS: {e}"),
                        })
                    }
                    Err(_) => {
                        return Err(LnurlError::Unreachable {
                            host: host.clone(),
                            why: "DNS timed out".into(),
                        })
                    }
                }
            }
            None => return Err(refused("no host")),
        };
        if addrs.is_empty() {
            return Err(LnurlError::Unreachable {
                host,
                why: "DNS gave no address".into(),
            });
        }
        let allowed = self.allow_private_hosts || self.allow_hosts.contains(&host);
        if !allowed {
            if let Some(a) = addrs.iter().find(|a| is_internal(a.ip())) {
                return Err(refused(&format!(
                    "{} is a local or private address (see [nfc] allow_hosts)",
                    a.ip()
                )));
            }
        }
        Ok(addrs)
    }

    /// GETs `url` under the rules and returns its body (any 2xx). Errors name only the host.
    /// The timeout bounds the whole request, from the DNS lookup to the last byte, so a
    /// slow resolver and a slow server together cannot take twice as long.
    pub async fn get(&self, url: &url::Url) -> Result<Vec<u8>, LnurlError> {
        self.session().get(url).await
    }

    /// A card's exchange with its service, which may go over one connection (see
    /// [`Session`]).
    pub fn session(&self) -> Session<'_> {
        Session {
            rules: self,
            last: None,
        }
    }

    /// A client that connects only to `addrs` for `url`'s host (no second DNS answer).
    fn client_for(
        &self,
        url: &url::Url,
        addrs: &[SocketAddr],
    ) -> Result<reqwest::Client, LnurlError> {
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls((*self.tls).clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .no_proxy()
            .user_agent(concat!("lnvend/", env!("CARGO_PKG_VERSION")));
        if let Some(url::Host::Domain(d)) = url.host() {
            builder = builder.resolve_to_addrs(d, addrs);
        }
        builder.build().map_err(|e| LnurlError::Unreachable {
            host: url.host_str().unwrap_or("").to_string(),
            why: e.without_url().to_string(),
        })
    }

    /// Step 3 of the flow: the card's withdrawRequest.
    pub async fn withdraw_request(&self, card: &CardUrl) -> Result<WithdrawRequest, LnurlError> {
        self.session().withdraw_request(card).await
    }

    /// Step 5: send the invoice on screen (and the PIN) to the card's service. `Ok` means
    /// only that the service will try to pay.
    pub async fn callback(
        &self,
        req: &WithdrawRequest,
        bolt11: &str,
        pin: Option<&Secret>,
    ) -> Result<(), LnurlError> {
        self.session().callback(req, bolt11, pin).await
    }
}

/// One card's exchange with its service: the withdrawRequest, then the callback. A Bolt
/// Card service puts its callback on its own host, so the callback reuses the connection
/// (and the addresses checked for it) of the withdrawRequest: no second DNS lookup, TCP or
/// TLS handshake, which is most of a request's time to a service across the internet. A
/// callback on another origin (scheme, host, port) is resolved and checked on its own.
pub struct Session<'a> {
    rules: &'a SafeGet,
    /// The origin of the last request and its client, pinned to that origin's checked
    /// addresses.
    last: Option<(url::Origin, reqwest::Client)>,
}

impl Session<'_> {
    /// GETs `url` under the rules (see [`SafeGet::get`]).
    pub async fn get(&mut self, url: &url::Url) -> Result<Vec<u8>, LnurlError> {
        let timeout = self.rules.timeout;
        match tokio::time::timeout(timeout, self.get_within(url)).await {
            Ok(r) => r,
            Err(_) => Err(LnurlError::Unreachable {
                host: url.host_str().unwrap_or("").to_string(),
                why: "timed out".into(),
            }),
        }
    }

    async fn get_within(&mut self, url: &url::Url) -> Result<Vec<u8>, LnurlError> {
        let origin = url.origin();
        let client = match &self.last {
            // Same scheme, host and port as a request already checked and made: the
            // same addresses. A URL with credentials is refused below, never reused.
            Some((o, c))
                if *o == origin && url.username().is_empty() && url.password().is_none() =>
            {
                c.clone()
            }
            _ => {
                let addrs = self.rules.resolve(url).await?;
                let c = self.rules.client_for(url, &addrs)?;
                self.last = Some((origin, c.clone()));
                c
            }
        };
        let host = url.host_str().unwrap_or("").to_string();
        let unreachable = |why: String| LnurlError::Unreachable {
            host: host.clone(),
            why,
        };
        let bad = |why: String| LnurlError::BadReply {
            host: host.clone(),
            why,
        };
        let fetch = async {
            let mut resp = client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| unreachable(short_error(e)))?;
            let status = resp.status();
            if status.is_redirection() {
                return Err(bad(format!("redirect ({}) not followed", status.as_u16())));
            }
            if status.is_server_error() {
                return Err(unreachable(format!("server error {}", status.as_u16())));
            }
            if resp.content_length().is_some_and(|n| n > MAX_REPLY as u64) {
                return Err(bad(format!("reply over {MAX_REPLY} bytes")));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| unreachable(short_error(e)))?
            {
                if body.len() + chunk.len() > MAX_REPLY {
                    return Err(bad(format!("reply over {MAX_REPLY} bytes")));
                }
                body.extend_from_slice(&chunk);
            }
            // LNURL services answer errors with 200 and a JSON status; other 4xx carry no
            // reason fit for the screen, unless their body is that JSON.
            if !status.is_success() {
                return match parse_raw(&body, &host) {
                    Err(declined @ LnurlError::Declined { .. }) => Err(declined),
                    _ => Err(bad(format!("status {}", status.as_u16()))),
                };
            }
            Ok(body)
        };
        // Bounded with the lookup by `get` (a slow drip of bytes too).
        fetch.await
    }

    /// Step 3 of the flow: the card's withdrawRequest.
    pub async fn withdraw_request(
        &mut self,
        card: &CardUrl,
    ) -> Result<WithdrawRequest, LnurlError> {
        let body = self.get(card.expose()).await?;
        parse_withdraw_request(&body, &card.host())
    }

    /// Step 5: send the invoice on screen (and the PIN) to the card's service. `Ok` means
    /// only that the service will try to pay.
    pub async fn callback(
        &mut self,
        req: &WithdrawRequest,
        bolt11: &str,
        pin: Option<&Secret>,
    ) -> Result<(), LnurlError> {
        let url = req.callback_url(bolt11, pin);
        tracing::debug!(callback = %redacted(&url), "sending the invoice to the card's service");
        let body = self.get(&url).await?;
        parse_callback_reply(&body, url.host_str().unwrap_or(""))
    }
}

/// A transport error with its cause, without its URL (which holds `p`/`c` or `k1`).
fn short_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else {
        crate::backend::http::error_chain(e)
    }
}

#[cfg(test)]
mod tests;
