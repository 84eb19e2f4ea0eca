//! The card's NDEF file, read from an NTAG 424 DNA, down to the one URL a Bolt Card carries,
//! and that URL mapped from `lnurlw://` to the address lnvend may fetch (LUD-17).
//!
//! Everything here is parsed from bytes a stranger's card chose, so every length is checked
//! against what is there and every failure is a [`NdefError`], never a panic. The URL carries
//! the card's one-time `p` and `c`: [`CardUrl`] prints only its scheme and host.

use std::fmt;

/// The ISO 7816-4 APDUs that read the NDEF file of an NTAG 424 DNA (NFC Forum Type 4 Tag).
pub mod apdu {
    /// SELECT the NDEF application by its AID `D2760000850101`.
    pub const SELECT_APP: [u8; 13] = [
        0x00, 0xA4, 0x04, 0x00, 0x07, 0xD2, 0x76, 0x00, 0x00, 0x85, 0x01, 0x01, 0x00,
    ];
    /// SELECT the NDEF file `E104` by its file id (first or only occurrence, no reply data).
    pub const SELECT_NDEF_FILE: [u8; 7] = [0x00, 0xA4, 0x00, 0x0C, 0x02, 0xE1, 0x04];

    /// READ BINARY `len` bytes (1..=255) from `offset` of the selected file.
    pub fn read_binary(offset: u16, len: u8) -> [u8; 5] {
        let [hi, lo] = offset.to_be_bytes();
        [0x00, 0xB0, hi, lo, len]
    }

    /// Splits a response APDU into its data and whether the status word is 90 00.
    pub fn split(resp: &[u8]) -> Option<(&[u8], bool)> {
        if resp.len() < 2 {
            return None;
        }
        let (data, sw) = resp.split_at(resp.len() - 2);
        Some((data, sw == [0x90, 0x00]))
    }
}

/// The NDEF file of an NTAG 424 DNA is at most 256 bytes (the URL with `p`/`c` fits in ~100);
/// a reader never asks for more than this whatever NLEN says.
pub const MAX_NDEF_LEN: u16 = 1024;

/// Why the bytes on a card are not a Bolt Card's URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NdefError {
    #[error("the NDEF message is truncated")]
    Truncated,
    #[error("the NDEF message is empty")]
    Empty,
    #[error("the first NDEF record is not a URI record")]
    NotUri,
    #[error("the URI is not valid UTF-8 or not a URL")]
    BadUri,
    #[error("the URL is not an lnurlw:// link with p and c (scheme {scheme})")]
    NotBoltCard { scheme: String },
}

/// Parses the NDEF message (without the 2-byte NLEN) and returns the first record's URI.
pub fn parse_message(msg: &[u8]) -> Result<String, NdefError> {
    if msg.is_empty() {
        return Err(NdefError::Empty);
    }
    let header = msg[0];
    let tnf = header & 0x07;
    let short = header & 0x10 != 0;
    let has_id = header & 0x08 != 0;
    let chunked = header & 0x20 != 0;
    let mut at = 1usize;
    let type_len = *msg.get(at).ok_or(NdefError::Truncated)? as usize;
    at += 1;
    let payload_len = if short {
        let n = *msg.get(at).ok_or(NdefError::Truncated)? as usize;
        at += 1;
        n
    } else {
        let b = msg.get(at..at + 4).ok_or(NdefError::Truncated)?;
        at += 4;
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
    };
    let id_len = if has_id {
        let n = *msg.get(at).ok_or(NdefError::Truncated)? as usize;
        at += 1;
        n
    } else {
        0
    };
    let typ = msg.get(at..at + type_len).ok_or(NdefError::Truncated)?;
    at += type_len + id_len;
    let end = at.checked_add(payload_len).ok_or(NdefError::Truncated)?;
    let payload = msg.get(at..end).ok_or(NdefError::Truncated)?;
    // TNF 1 = NFC Forum well-known type; "U" = URI. A chunked record is not a Bolt Card.
    if tnf != 1 || typ != b"U" || chunked {
        return Err(NdefError::NotUri);
    }
    let (&code, rest) = payload.split_first().ok_or(NdefError::BadUri)?;
    let prefix = uri_prefix(code).ok_or(NdefError::BadUri)?;
    let rest = std::str::from_utf8(rest).map_err(|_| NdefError::BadUri)?;
    if rest.chars().any(char::is_control) {
        return Err(NdefError::BadUri);
    }
    Ok(format!("{prefix}{rest}"))
}

/// Parses the whole NDEF file (NLEN then the message).
pub fn parse_file(file: &[u8]) -> Result<String, NdefError> {
    let nlen = file.get(..2).ok_or(NdefError::Truncated)?;
    let nlen = u16::from_be_bytes([nlen[0], nlen[1]]) as usize;
    let msg = file.get(2..2 + nlen).ok_or(NdefError::Truncated)?;
    parse_message(msg)
}

/// The URI identifier codes of the NFC Forum URI record type (the abbreviation byte).
fn uri_prefix(code: u8) -> Option<&'static str> {
    const PREFIXES: [&str; 36] = [
        "",
        "http://www.",
        "https://www.",
        "http://",
        "https://",
        "tel:",
        "mailto:",
        "ftp://anonymous:anonymous@",
        "ftp://ftp.",
        "ftps://",
        "sftp://",
        "smb://",
        "nfs://",
        "ftp://",
        "dav://",
        "news:",
        "telnet://",
        "imap:",
        "rtsp://",
        "urn:",
        "pop:",
        "sip:",
        "sips:",
        "tftp:",
        "btspp://",
        "btl2cap://",
        "btgoep://",
        "tcpobex://",
        "irdaobex://",
        "file://",
        "urn:epc:id:",
        "urn:epc:tag:",
        "urn:epc:pat:",
        "urn:epc:raw:",
        "urn:epc:",
        "urn:nfc:",
    ];
    PREFIXES.get(code as usize).copied()
}

/// A Bolt Card's tap URL, mapped to the address to fetch. Its query holds the card's
/// one-time `p` and `c`, so `Debug` and `Display` show only scheme and host.
#[derive(Clone, PartialEq, Eq)]
pub struct CardUrl(url::Url);

impl CardUrl {
    /// Checks that `uri` is a Bolt Card's `lnurlw://host/path?…p=…&c=…` and maps it to
    /// `https://` (LUD-17), or to `http://` only when the test switch `insecure_http` is on.
    pub fn from_card_uri(uri: &str, insecure_http: bool) -> Result<CardUrl, NdefError> {
        let scheme_end = uri.find("://").ok_or(NdefError::NotBoltCard {
            scheme: "(none)".into(),
        })?;
        let scheme = &uri[..scheme_end];
        if !scheme.eq_ignore_ascii_case("lnurlw") {
            return Err(NdefError::NotBoltCard {
                scheme: printable(scheme),
            });
        }
        let target = if insecure_http { "http" } else { "https" };
        let mapped = format!("{target}{}", &uri[scheme_end..]);
        let url = url::Url::parse(&mapped).map_err(|_| NdefError::BadUri)?;
        if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
            return Err(NdefError::BadUri);
        }
        let has = |k: &str| url.query_pairs().any(|(n, v)| n == k && !v.is_empty());
        if !has("p") || !has("c") {
            return Err(NdefError::NotBoltCard {
                scheme: "lnurlw (without p and c)".into(),
            });
        }
        Ok(CardUrl(url))
    }

    /// The URL to fetch. Never log it: the query holds `p` and `c`.
    pub fn expose(&self) -> &url::Url {
        &self.0
    }

    /// The host, for logs and the screen.
    pub fn host(&self) -> String {
        self.0.host_str().unwrap_or("").to_string()
    }
}

impl fmt::Debug for CardUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", redacted(&self.0))
    }
}

impl fmt::Display for CardUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", redacted(&self.0))
    }
}

/// Scheme, host and port of `url`; the rest replaced by a marker. A card service's path can
/// hold secrets as well as its query: LNbits' Bolt Cards extension puts `k1` in the
/// callback's path, and a tap URL's path may name the card.
pub fn redacted(url: &url::Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(p) = url.port() {
        out.push_str(&format!(":{p}"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        out.push_str("/<redacted>");
    }
    out
}

fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An NDEF file as an NTAG 424 holds it: NLEN, one short URI record, prefix code 0.
    pub(crate) fn ndef_file(uri: &str) -> Vec<u8> {
        let mut payload = vec![0x00];
        payload.extend_from_slice(uri.as_bytes());
        let mut msg = vec![0xD1, 0x01, payload.len() as u8, b'U'];
        msg.extend_from_slice(&payload);
        let mut file = (msg.len() as u16).to_be_bytes().to_vec();
        file.extend_from_slice(&msg);
        file
    }

    const TAP: &str = "lnurlw://card.example.com/boltcards/api/v1/scan/abc?p=4E2E289D945A66BB13377A728884E867&c=E19CCB1FED8892CE";

    #[test]
    fn a_bolt_card_record_gives_its_url() {
        assert_eq!(parse_file(&ndef_file(TAP)).unwrap(), TAP);
    }

    #[test]
    fn a_long_record_with_an_id_and_a_prefix_code_is_read() {
        // MB|ME, not short, ID present, TNF 1; prefix code 4 = "https://".
        let payload = [&[0x04u8][..], b"example.com/x"].concat();
        let mut msg = vec![0xC9, 0x01];
        msg.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        msg.push(2);
        msg.push(b'U');
        msg.extend_from_slice(b"id");
        msg.extend_from_slice(&payload);
        assert_eq!(parse_message(&msg).unwrap(), "https://example.com/x");
    }

    #[test]
    fn hostile_lengths_and_other_records_are_errors_not_panics() {
        assert_eq!(parse_file(&[]), Err(NdefError::Truncated));
        assert_eq!(parse_file(&[0x00, 0x00]), Err(NdefError::Empty));
        // NLEN says 200 bytes, 3 are there.
        assert_eq!(
            parse_file(&[0x00, 200, 0xD1, 1, 50]),
            Err(NdefError::Truncated)
        );
        // Payload length 4 GiB.
        let msg = [0xC1, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, b'U', 0];
        assert_eq!(parse_message(&msg), Err(NdefError::Truncated));
        // A text record ("T"), not a URI.
        let msg = [0xD1, 0x01, 0x03, b'T', 0x02, b'e', b'n'];
        assert_eq!(parse_message(&msg), Err(NdefError::NotUri));
        // A URI record with an unknown prefix code, and with invalid UTF-8.
        assert_eq!(
            parse_message(&[0xD1, 0x01, 0x02, b'U', 0x99, b'a']),
            Err(NdefError::BadUri)
        );
        assert_eq!(
            parse_message(&[0xD1, 0x01, 0x02, b'U', 0x00, 0xFF]),
            Err(NdefError::BadUri)
        );
        // Every truncation of a good file is an error.
        let good = ndef_file(TAP);
        for n in 0..good.len() {
            assert!(parse_file(&good[..n]).is_err(), "prefix of {n} bytes");
        }
    }

    #[test]
    fn lnurlw_maps_to_https_and_http_only_with_the_test_switch() {
        let u = CardUrl::from_card_uri(TAP, false).unwrap();
        assert_eq!(u.expose().scheme(), "https");
        assert_eq!(u.host(), "card.example.com");
        let u = CardUrl::from_card_uri(TAP, true).unwrap();
        assert_eq!(u.expose().scheme(), "http");
        assert!(CardUrl::from_card_uri("LNURLW://h.example/x?p=1&c=2", false).is_ok());
    }

    #[test]
    fn other_links_are_not_bolt_cards() {
        for uri in [
            "https://card.example.com/x?p=1&c=2",
            "lnurlp://card.example.com/x?p=1&c=2",
            "lnurlw://card.example.com/x?p=1",
            "lnurlw://card.example.com/x?c=1",
            "lnurlw://card.example.com/x?p=&c=",
            "tel:+123",
        ] {
            assert!(
                matches!(
                    CardUrl::from_card_uri(uri, false),
                    Err(NdefError::NotBoltCard { .. })
                ),
                "{uri}"
            );
        }
        assert_eq!(
            CardUrl::from_card_uri("lnurlw://user:pw@h.example/x?p=1&c=2", false),
            Err(NdefError::BadUri)
        );
    }

    #[test]
    fn the_card_url_prints_only_its_scheme_and_host() {
        let u = CardUrl::from_card_uri(TAP, false).unwrap();
        for shown in [format!("{u:?}"), format!("{u}")] {
            assert_eq!(shown, "https://card.example.com/<redacted>");
        }
        let bare = url::Url::parse("https://card.example.com:8443/").unwrap();
        assert_eq!(redacted(&bare), "https://card.example.com:8443");
    }

    #[test]
    fn the_apdus_are_those_of_the_ntag_424() {
        assert_eq!(
            &apdu::SELECT_APP[5..12],
            &hex::decode("D2760000850101").unwrap()[..]
        );
        assert_eq!(&apdu::SELECT_NDEF_FILE[5..], &[0xE1, 0x04]);
        assert_eq!(apdu::read_binary(2, 0x40), [0x00, 0xB0, 0x00, 0x02, 0x40]);
        assert_eq!(
            apdu::split(&[0x01, 0x90, 0x00]),
            Some((&[0x01u8][..], true))
        );
        assert_eq!(apdu::split(&[0x6A, 0x82]), Some((&[][..], false)));
        assert_eq!(apdu::split(&[0x90]), None);
    }
}
