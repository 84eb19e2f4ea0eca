//! The NIP-47 connection URI, `nostr+walletconnect://<wallet pubkey>?relay=…&secret=…`, parsed
//! into a [`Connection`]. The URI carries the client's secret key: it is held as a
//! [`Secret`] and as [`Keys`], neither of which prints, and no parse error quotes the input.

use url::Url;

use crate::nostr::relay::relay_label;

use crate::nostr::event::{KeyError, Keys, PublicKey};
use crate::secret::Secret;

/// Longer URIs are refused before they are parsed (a real one is ~200 characters).
pub const MAX_URI: usize = 4096;
/// More relays than this is refused: each one is a connection the machine keeps open.
pub const MAX_RELAYS: usize = 8;
const SCHEME: &str = "nostr+walletconnect:";

/// Why a connection URI was refused. Never contains the secret, nor the URI.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UriError {
    #[error("the connection URI is longer than {MAX_URI} characters")]
    TooLong,
    #[error("the connection URI does not start with nostr+walletconnect://")]
    Scheme,
    #[error("the wallet public key after nostr+walletconnect:// is invalid: {0}")]
    WalletKey(KeyError),
    #[error("the connection URI has no relay parameter")]
    NoRelay,
    #[error("relay parameter {position} is not a ws:// or wss:// URL")]
    BadRelay { position: usize },
    #[error("the connection URI names more than {MAX_RELAYS} relays")]
    TooManyRelays,
    #[error("the connection URI has no secret parameter")]
    NoSecret,
    #[error("the connection URI has more than one secret parameter")]
    DuplicateSecret,
    #[error("the secret parameter is invalid: {0}")]
    BadSecret(KeyError),
    #[error("the lud16 parameter is not a lightning address (name@domain)")]
    BadLud16,
}

/// A parsed, validated connection to one wallet service. `Debug` shows the wallet, the
/// relays (scheme, host and port: see [`relay_label`]) and the client's public key; never
/// the secret.
#[derive(Clone)]
pub struct Connection {
    wallet: PublicKey,
    relays: Vec<Url>,
    secret: Secret,
    keys: Keys,
    lud16: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let relays: Vec<String> = self.relays.iter().map(relay_label).collect();
        f.debug_struct("Connection")
            .field("wallet", &self.wallet)
            .field("relays", &relays)
            .field("client", &self.keys.public_key())
            .field("lud16", &self.lud16)
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub fn parse(uri: &str) -> Result<Connection, UriError> {
        if uri.len() > MAX_URI {
            return Err(UriError::TooLong);
        }
        let uri = uri.trim();
        let rest = match uri.get(..SCHEME.len()) {
            Some(s) if s.eq_ignore_ascii_case(SCHEME) => &uri[SCHEME.len()..],
            _ => return Err(UriError::Scheme),
        };
        // Some wallets write `nostr+walletconnect:<key>?…`, without the slashes.
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (key, query) = rest.split_once('?').unwrap_or((rest, ""));
        let key = key.strip_suffix('/').unwrap_or(key).to_ascii_lowercase();
        let wallet = PublicKey::from_hex(&key).map_err(UriError::WalletKey)?;

        let mut relays: Vec<Url> = Vec::new();
        let mut relay_params = 0;
        let mut secret: Option<(Secret, Keys)> = None;
        let mut lud16 = None;
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "relay" => {
                    relay_params += 1;
                    let relay = Url::parse(&value)
                        .ok()
                        .filter(|u| matches!(u.scheme(), "ws" | "wss") && u.has_host())
                        .ok_or(UriError::BadRelay {
                            position: relay_params,
                        })?;
                    if !relays.contains(&relay) {
                        relays.push(relay);
                    }
                    if relays.len() > MAX_RELAYS {
                        return Err(UriError::TooManyRelays);
                    }
                }
                "secret" => {
                    if secret.is_some() {
                        return Err(UriError::DuplicateSecret);
                    }
                    let s = Secret::new(value.to_ascii_lowercase());
                    let keys = Keys::from_secret(&s).map_err(UriError::BadSecret)?;
                    secret = Some((s, keys));
                }
                "lud16" => {
                    let ok = value.len() <= 320
                        && value
                            .split_once('@')
                            .is_some_and(|(n, d)| !n.is_empty() && d.contains('.'));
                    if !ok {
                        return Err(UriError::BadLud16);
                    }
                    lud16 = Some(value.into_owned());
                }
                // Parameters this client does not use are allowed by NIP-47.
                _ => {}
            }
        }
        if relays.is_empty() {
            return Err(UriError::NoRelay);
        }
        let (secret, keys) = secret.ok_or(UriError::NoSecret)?;
        Ok(Connection {
            wallet,
            relays,
            secret,
            keys,
            lud16,
        })
    }

    /// The wallet service's key: the only author whose events are accepted.
    pub fn wallet(&self) -> PublicKey {
        self.wallet
    }

    pub fn relays(&self) -> &[Url] {
        &self.relays
    }

    /// The client's keys (from `secret`): requests are signed with them.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The client's public key, which the wallet tags responses with.
    pub fn client(&self) -> PublicKey {
        self.keys.public_key()
    }

    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    pub fn lud16(&self) -> Option<&str> {
        self.lud16.as_deref()
    }
}
