//! A timing proxy between the machine and the card's service: the card's URL names it, so
//! the machine's withdrawRequest and callback go through it (LNbits builds the callback URL
//! from the request's Host, so the callback comes back through it too). It forwards bytes
//! unchanged and notes when each request went out and when the last byte of its reply came
//! back, which splits a whole-machine tap into the service's time and lnvend's own without
//! instrumenting lnvend. On loopback it adds well under a millisecond per request.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One HTTP request seen by the proxy.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The request line's path (without the query, which holds `p`/`c` or `k1`).
    pub path: String,
    /// The request's first byte from the machine.
    pub sent: Instant,
    /// The last byte of the reply forwarded before the next request on the connection, or
    /// before the connection closed.
    pub replied: Option<Instant>,
}

#[derive(Default)]
struct Log {
    exchanges: Vec<Exchange>,
}

pub struct Proxy {
    pub port: u16,
    log: Arc<Mutex<Log>>,
    _rt: tokio::runtime::Runtime,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:upstream`, on a runtime
    /// of its own (one thread) so it takes no time from the machine's two workers.
    pub fn start(upstream: u16) -> Proxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(TcpListener::bind(("127.0.0.1", 0)))
            .expect("proxy port");
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Log::default()));
        let l = log.clone();
        rt.spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let l = l.clone();
                tokio::spawn(async move {
                    if let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        forward(down, up, l).await;
                    }
                });
            }
        });
        Proxy { port, log, _rt: rt }
    }

    /// The exchanges whose request went out at or after `since`, in order.
    pub fn since(&self, since: Instant) -> Vec<Exchange> {
        let log = self.log.lock().unwrap();
        let mut v: Vec<Exchange> = log
            .exchanges
            .iter()
            .filter(|e| e.sent >= since)
            .cloned()
            .collect();
        v.sort_by_key(|e| e.sent);
        v
    }
}

/// Copies both ways; a chunk from the machine that starts with a request line opens an
/// exchange, every chunk back moves that exchange's `replied`.
async fn forward(down: TcpStream, up: TcpStream, log: Arc<Mutex<Log>>) {
    let _ = down.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (mut dr, mut dw) = down.into_split();
    let (mut ur, mut uw) = up.into_split();
    // The index in the log of this connection's exchange under way.
    let current: Arc<Mutex<Option<usize>>> = Arc::default();
    let (cur, l) = (current.clone(), log.clone());
    let to_service = async move {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = match dr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let at = Instant::now();
            if let Some(path) = request_path(&buf[..n]) {
                let mut log = l.lock().unwrap();
                log.exchanges.push(Exchange {
                    path,
                    sent: at,
                    replied: None,
                });
                *cur.lock().unwrap() = Some(log.exchanges.len() - 1);
            }
            if uw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = uw.shutdown().await;
    };
    let to_machine = async move {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = match ur.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if dw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            let at = Instant::now();
            if let Some(i) = *current.lock().unwrap() {
                log.lock().unwrap().exchanges[i].replied = Some(at);
            }
        }
        let _ = dw.shutdown().await;
    };
    tokio::join!(to_service, to_machine);
}

/// The path of `GET /path?query HTTP/1.1`, if `chunk` starts with a request line.
fn request_path(chunk: &[u8]) -> Option<String> {
    let line = chunk.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    if !matches!(method, "GET" | "POST" | "PUT" | "DELETE") {
        return None;
    }
    let target = parts.next()?;
    Some(target.split('?').next().unwrap_or("").to_string())
}
