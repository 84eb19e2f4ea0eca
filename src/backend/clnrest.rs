//! A remote Core Lightning node through its built-in clnrest plugin: every call is
//! `POST {url}/v1/<method>` with the params as a JSON object and the rune in the `Rune`
//! header. This module owns only that transport (success is HTTP 201; 401/403 mean the rune
//! was refused; other errors carry CLN's `{code,message}` body); what the calls mean is
//! shared with the local socket in [`super::cln`]. Wake-ups are `waitinvoice` long-polled
//! over HTTPS; when such a request ends without an answer, the generic watcher reconnects.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::cln::{printable, CallError, ClnBackend, LongCall, Rpc};
use super::http::{self, TlsSettings};
use super::BackendError;
use crate::secret::Secret;

/// How long one `waitinvoice` long-poll may stay open. Longer than any normal request, and
/// short enough that a connection silently cut by a NAT box is noticed.
pub const LONG_POLL: Duration = Duration::from_secs(300);

/// The clnrest transport.
pub struct RestRpc {
    base: url::Url,
    rune: Secret,
    client: reqwest::Client,
    long_client: reqwest::Client,
}

impl std::fmt::Debug for RestRpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The rune is a Secret and prints redacted anyway; it is left out entirely.
        f.debug_struct("RestRpc")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl RestRpc {
    pub fn new(
        url: &str,
        rune: Secret,
        tls: &TlsSettings,
        timeout: Duration,
    ) -> Result<RestRpc, BackendError> {
        let mut base = url::Url::parse(url)
            .map_err(|e| BackendError::Config(format!("clnrest url {url:?}: {e}")))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(RestRpc {
            base,
            rune,
            client: http::client(tls, timeout)?,
            long_client: http::client(tls, LONG_POLL.max(timeout))?,
        })
    }

    fn request(
        &self,
        client: &reqwest::Client,
        method: &str,
        params: &Value,
    ) -> reqwest::RequestBuilder {
        // `method` is one of ours (fixed names), never user input.
        let url = self
            .base
            .join(&format!("v1/{method}"))
            .unwrap_or_else(|_| self.base.clone());
        client
            .post(url)
            .header("Rune", self.rune.expose())
            .json(params)
    }
}

/// A clnrest reply as a call result.
async fn reply(resp: reqwest::Response, method: &str) -> Result<Value, CallError> {
    let (status, body) = http::read_body(resp).await.map_err(CallError::Backend)?;
    match status.as_u16() {
        201 => http::parse_json(&body).map_err(CallError::Backend),
        // The rune, not a key: say so, with the node's reason (which permission).
        401 | 403 => {
            let why = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|e| e.get("message").and_then(Value::as_str).map(printable))
                .unwrap_or_default();
            Err(CallError::Backend(BackendError::Unauthorized(format!(
                "{method}: the node refused the rune ({}) {why}",
                status.as_u16()
            ))))
        }
        _ => {
            // CLN's own error, passed through: the same codes as on the socket.
            let err: Option<Value> = serde_json::from_slice(&body).ok();
            let code = err
                .as_ref()
                .and_then(|e| e.get("code"))
                .and_then(Value::as_i64);
            let message = err
                .as_ref()
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str);
            match (code, message) {
                (Some(code), Some(message)) => Err(CallError::Rpc {
                    code,
                    message: message.to_owned(),
                }),
                _ => Err(CallError::Backend(http::status_error(
                    status, &body, method,
                ))),
            }
        }
    }
}

#[async_trait]
impl Rpc for RestRpc {
    async fn call(&self, method: &str, params: Value) -> Result<Value, CallError> {
        let resp = self
            .request(&self.client, method, &params)
            .send()
            .await
            .map_err(|e| CallError::Backend(http::transport_error(e)))?;
        reply(resp, method).await
    }

    async fn start_long_call(&self, method: &str, params: Value) -> Result<LongCall, BackendError> {
        let send = self.request(&self.long_client, method, &params).send();
        let method = method.to_owned();
        Ok(Box::pin(async move {
            let resp = send
                .await
                .map_err(|e| CallError::Backend(http::transport_error(e)))?;
            reply(resp, &method).await
        }))
    }
}

/// The remote node's backend.
pub type ClnRestBackend = ClnBackend<RestRpc>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_a_configuration_error() {
        let e = RestRpc::new(
            "not a url",
            Secret::new("rune-sekrit-123"),
            &TlsSettings::default(),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(e, BackendError::Config(_)), "{e:?}");
        assert!(e.to_string().contains("configuration"), "{e}");
        assert!(!e.to_string().contains("rune-sekrit"), "{e}");
    }

    #[tokio::test]
    async fn a_redirect_is_an_error_and_the_rune_never_reaches_the_other_host() {
        use crate::backend::http::test_server;
        let (elsewhere, elsewhere_saw) = test_server::start(
            "HTTP/1.1 201 Created\r\nContent-Length: 22\r\n\r\n{\"network\":\"regtest\"}\n".into(),
        )
        .await;
        let (server, server_saw) =
            test_server::start(test_server::redirect_to(elsewhere, "/v1/getinfo")).await;
        let r = RestRpc::new(
            &format!("http://{server}"),
            Secret::new("rune-sekrit-123"),
            &TlsSettings::default(),
            Duration::from_secs(5),
        )
        .unwrap();
        let err = r
            .call("getinfo", serde_json::json!({}))
            .await
            .unwrap_err()
            .into_backend("getinfo");
        assert!(err.to_string().contains("redirect"), "{err}");
        let long = r
            .start_long_call("waitinvoice", serde_json::json!({"label": "x"}))
            .await
            .unwrap()
            .await
            .unwrap_err()
            .into_backend("waitinvoice");
        assert!(long.to_string().contains("redirect"), "{long}");
        assert!(server_saw.lock().unwrap()[0].contains("rune-sekrit-123"));
        assert_eq!(
            elsewhere_saw.lock().unwrap().len(),
            0,
            "the other host got a request: {:?}",
            elsewhere_saw.lock().unwrap()
        );
    }

    #[test]
    fn the_rune_never_shows_in_debug() {
        let r = RestRpc::new(
            "https://node.lan:3010",
            Secret::new("rune-sekrit-123"),
            &TlsSettings::default(),
            Duration::from_secs(5),
        )
        .unwrap();
        let printed = format!("{r:?}");
        assert!(!printed.contains("sekrit"), "{printed}");
        assert!(printed.contains("node.lan"), "{printed}");
    }

    #[test]
    fn method_urls_keep_a_base_path() {
        let r = RestRpc::new(
            "https://node.lan:3010/cln",
            Secret::new("x"),
            &TlsSettings::default(),
            Duration::from_secs(5),
        )
        .unwrap();
        let req = r
            .request(&r.client, "getinfo", &serde_json::json!({}))
            .build()
            .unwrap();
        assert_eq!(req.url().as_str(), "https://node.lan:3010/cln/v1/getinfo");
        assert!(RestRpc::new(
            "not a url",
            Secret::new("x"),
            &TlsSettings::default(),
            Duration::from_secs(5)
        )
        .is_err());
    }
}
