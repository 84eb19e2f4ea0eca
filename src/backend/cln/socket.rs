//! The local Core Lightning transport: JSON-RPC 2.0 over lightningd's `lightning-rpc` unix
//! socket, one connection per call. It owns only the bytes on the socket and how big a reply
//! may be; what the calls and their replies mean is in [`super`], shared with clnrest.
//!
//! It is a small client of its own rather than the `cln-rpc` crate, whose reader takes a
//! reply of any size: a hostile or broken daemon must not be able to fill the Pi's memory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::{printable, CallError, LongCall, Rpc};
use crate::backend::BackendError;

/// The largest reply lnvend reads from `lightning-rpc`; a bigger one is refused as hostile
/// (lnvend's replies are a few kilobytes: one invoice, or a `getinfo`).
pub const MAX_SOCKET_REPLY: usize = 1 << 20;

/// The local node: one connection per call over the `lightning-rpc` socket, as
/// `lightning-cli` does, so a long `waitinvoice` never holds up another call. A small
/// JSON-RPC 2.0 client of its own rather than the `cln-rpc` crate, whose reader takes a reply
/// of any size: one request object out, then exactly one reply object read, at most
/// [`MAX_SOCKET_REPLY`] bytes, and the connection is dropped.
#[derive(Debug, Clone)]
pub struct SocketRpc {
    path: PathBuf,
    timeout: std::time::Duration,
}

impl SocketRpc {
    pub fn new(path: PathBuf, timeout: std::time::Duration) -> SocketRpc {
        SocketRpc { path, timeout }
    }

    async fn connect(&self) -> Result<UnixStream, BackendError> {
        match tokio::time::timeout(self.timeout, UnixStream::connect(&self.path)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(BackendError::Unreachable(format!(
                "cannot connect to {}: {e}",
                self.path.display()
            ))),
            Err(_) => Err(BackendError::Unreachable(format!(
                "connecting to {} timed out",
                self.path.display()
            ))),
        }
    }
}

/// Request ids, unique within this process (lightningd only echoes them).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn socket_unreachable(what: &str, e: std::io::Error) -> CallError {
    CallError::Backend(BackendError::Unreachable(format!(
        "lightning-rpc {what}: {e}"
    )))
}

fn socket_bad(message: impl Into<String>) -> CallError {
    CallError::Backend(BackendError::BadReply(format!(
        "lightning-rpc: {}",
        message.into()
    )))
}

async fn raw_call(mut conn: UnixStream, method: String, params: Value) -> Result<Value, CallError> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let mut out = request.to_string().into_bytes();
    out.extend_from_slice(b"\n\n");
    conn.write_all(&out)
        .await
        .map_err(|e| socket_unreachable("write", e))?;
    let reply = read_reply(&mut conn, MAX_SOCKET_REPLY).await?;
    // One call per connection: dropped here, whatever the node still has to say.
    drop(conn);
    interpret(reply, id)
}

/// Reads one JSON object from `r`, refusing more than `max` bytes before it is complete.
async fn read_reply<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Value, CallError> {
    let mut buf = Vec::with_capacity(8 << 10);
    let mut chunk = vec![0u8; 8 << 10];
    let mut scan = ObjectScan::default();
    loop {
        let n = r
            .read(&mut chunk)
            .await
            .map_err(|e| socket_unreachable("read", e))?;
        if n == 0 {
            return Err(CallError::Backend(BackendError::Unreachable(
                "lightning-rpc closed the connection without an answer".into(),
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
        match scan.feed(&buf).map_err(socket_bad)? {
            Some(range) => {
                return serde_json::from_slice(&buf[range])
                    .map_err(|e| socket_bad(format!("malformed JSON: {e}")));
            }
            None if buf.len() > max => {
                return Err(socket_bad(format!("reply over {} MiB, refused", max >> 20)))
            }
            None => {}
        }
    }
}

/// Finds where the first JSON object in a growing buffer ends, in one pass over the bytes
/// (no re-parsing of a reply that arrives in many pieces). Only braces outside strings
/// count; serde_json then parses the object for real.
#[derive(Default)]
struct ObjectScan {
    /// How far the buffer has been scanned.
    pos: usize,
    start: Option<usize>,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl ObjectScan {
    fn feed(&mut self, buf: &[u8]) -> Result<Option<std::ops::Range<usize>>, &'static str> {
        while self.pos < buf.len() {
            let b = buf[self.pos];
            self.pos += 1;
            if self.start.is_none() {
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => continue,
                    b'{' => {
                        self.start = Some(self.pos - 1);
                        self.depth = 1;
                        continue;
                    }
                    _ => return Err("the reply is not a JSON object"),
                }
            }
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    (false, _) => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Ok(self.start.map(|s| s..self.pos));
                    }
                }
                _ => {}
            }
        }
        Ok(None)
    }
}

/// A JSON-RPC 2.0 reply to request `id` as a call result.
fn interpret(mut reply: Value, id: u64) -> Result<Value, CallError> {
    if reply.get("id").and_then(Value::as_u64) != Some(id) {
        return Err(socket_bad("a reply to another request"));
    }
    if let Some(err) = reply.get("error") {
        let code = err.get("code").and_then(Value::as_i64);
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        return match code {
            Some(code) => Err(CallError::Rpc {
                code,
                message: printable(message),
            }),
            None => Err(socket_bad("an error without a code")),
        };
    }
    match reply.get_mut("result") {
        Some(result) => Ok(result.take()),
        None => Err(socket_bad("a reply with neither result nor error")),
    }
}

#[async_trait]
impl Rpc for SocketRpc {
    async fn call(&self, method: &str, params: Value) -> Result<Value, CallError> {
        let conn = self.connect().await.map_err(CallError::Backend)?;
        match tokio::time::timeout(self.timeout, raw_call(conn, method.to_owned(), params)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Backend(BackendError::Unreachable(format!(
                "{method}: lightningd did not answer in time"
            )))),
        }
    }

    async fn start_long_call(&self, method: &str, params: Value) -> Result<LongCall, BackendError> {
        let conn = self.connect().await?;
        Ok(Box::pin(raw_call(conn, method.to_owned(), params)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::backend::cln::ClnBackend;
    use crate::backend::{InvoiceId, PaymentBackend};
    use crate::config::Network;

    /// A stand-in lightningd on a unix socket: answers each request with `reply(id)` (or
    /// never, for `None`), and counts the connections open right now.
    async fn socket_daemon(
        dir: &Path,
        reply: fn(&Value) -> Option<Vec<u8>>,
    ) -> (PathBuf, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let path = dir.join("lightning-rpc");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let count = open.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let count = count.clone();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let mut answered = false;
                    loop {
                        if !answered {
                            let mut it =
                                serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
                            if let Some(Ok(req)) = it.next() {
                                answered = true;
                                if let Some(out) = reply(&req) {
                                    let _ = conn.write_all(&out).await;
                                }
                            }
                        }
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    count.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (path, open)
    }

    async fn settle_at(open: &std::sync::atomic::AtomicUsize, want: usize) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now = open.load(std::sync::atomic::Ordering::SeqCst);
            if now == want || tokio::time::Instant::now() > deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn an_oversized_socket_reply_is_a_bad_reply_and_the_connection_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (path, open) = socket_daemon(dir.path(), |req| {
            // 2 MiB: a getinfo whose alias never ends.
            let alias = "x".repeat(2 << 20);
            let out = json!({"jsonrpc": "2.0", "id": req["id"],
                "result": {"network": "regtest", "alias": alias}});
            Some(format!("{out}\n\n").into_bytes())
        })
        .await;
        let rpc = SocketRpc::new(path, Duration::from_secs(10));
        // Not `expect_err`: a test failure must not print a 2 MiB reply.
        let Err(err) = rpc.call("getinfo", json!({})).await else {
            panic!("a 2 MiB reply was accepted");
        };
        assert!(
            matches!(&err, CallError::Backend(BackendError::BadReply(m)) if m.contains("MiB")),
            "{err:?}"
        );
        assert_eq!(settle_at(&open, 0).await, 0, "the connection was dropped");
    }

    #[tokio::test]
    async fn socket_replies_and_errors_are_read_and_malformed_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = socket_daemon(dir.path(), |req| {
            let out = match req["method"].as_str() {
                Some("getinfo") => json!({"jsonrpc": "2.0", "id": req["id"],
                    "result": {"network": "regtest", "note": "braces } { in \"strings\""}}),
                Some("invoice") => json!({"jsonrpc": "2.0", "id": req["id"],
                    "error": {"code": 900, "message": "Duplicate label"}}),
                Some("listinvoices") => json!({"jsonrpc": "2.0", "id": 999_999, "result": {}}),
                _ => return Some(b"[1, 2]".to_vec()),
            };
            // Written in small pieces is the same; one write is enough here.
            Some(out.to_string().into_bytes())
        })
        .await;
        let rpc = SocketRpc::new(path, Duration::from_secs(10));
        let info = rpc.call("getinfo", json!({})).await.unwrap();
        assert_eq!(info["network"], "regtest");
        assert_eq!(
            rpc.call("invoice", json!({})).await.unwrap_err(),
            CallError::Rpc {
                code: 900,
                message: "Duplicate label".into()
            }
        );
        assert!(matches!(
            rpc.call("listinvoices", json!({})).await.unwrap_err(),
            CallError::Backend(BackendError::BadReply(_))
        ));
        assert!(matches!(
            rpc.call("other", json!({})).await.unwrap_err(),
            CallError::Backend(BackendError::BadReply(_))
        ));
    }

    #[tokio::test]
    async fn ended_watches_leave_no_waitinvoice_connection_open() {
        let dir = tempfile::tempdir().unwrap();
        // A daemon whose waitinvoice never answers (an unpaid invoice).
        let (path, open) = socket_daemon(dir.path(), |_| None).await;
        let backend = ClnBackend::new(
            SocketRpc::new(path, Duration::from_secs(10)),
            "cln",
            Network::Regtest,
            dir.path(),
        );
        let mut watches = Vec::new();
        for i in 0..5 {
            watches.push(backend.wake_ups(&InvoiceId(format!("S{i}"))).await.unwrap());
        }
        assert_eq!(settle_at(&open, 5).await, 5);
        drop(watches);
        assert_eq!(settle_at(&open, 0).await, 0, "every connection was closed");
    }
}
