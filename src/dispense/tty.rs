//! The HAT's serial line as a [`super::hat::SerialLine`]: the tty opened non-blocking, set
//! to 115200 8N1 raw, and driven by the runtime's reactor (no blocking thread parked in a
//! read, so a stop never waits for the HAT to speak).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::hat::HatError;

pub struct Tty {
    fd: AsyncFd<OwnedFd>,
}

impl std::fmt::Debug for Tty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tty").finish_non_exhaustive()
    }
}

impl Tty {
    /// Opens `path` read-write, non-blocking, and (when it is a terminal) sets 115200 8N1
    /// raw. Call inside a tokio runtime.
    pub fn open(path: &Path) -> Result<Tty, HatError> {
        let err = |source| HatError::Open {
            path: path.display().to_string(),
            source,
        };
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(err)?;
        let fd: OwnedFd = file.into();
        raw_115200(&fd).map_err(err)?;
        // SAFETY: `fd` is an open descriptor the AsyncFd owns from here on; nothing else
        // closes or replaces it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| err(io::Error::from(e)))?;
        Ok(Tty { fd })
    }
}

/// 115200 baud, 8 data bits, no parity, 1 stop bit, raw (no echo, no line editing).
fn raw_115200(fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: `raw` is an open descriptor owned by `fd` for the whole call; termios is a
    // plain C struct that tcgetattr fills in before it is read.
    unsafe {
        if libc::isatty(raw) != 1 {
            return Ok(()); // a plain file or pipe in a test: nothing to set
        }
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(raw, &mut t) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::cfmakeraw(&mut t);
        // No hardware flow control: the HAT's header wires no RTS/CTS, and a CTS that
        // never rises would hold every write.
        t.c_cflag &= !(libc::PARENB | libc::CSTOPB | libc::CSIZE | libc::CRTSCTS);
        t.c_cflag |= libc::CS8 | libc::CLOCAL | libc::CREAD;
        if libc::cfsetispeed(&mut t, libc::B115200) != 0
            || libc::cfsetospeed(&mut t, libc::B115200) != 0
            || libc::tcsetattr(raw, libc::TCSANOW, &t) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl AsyncRead for Tty {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let res = guard.try_io(|fd| {
                // SAFETY: reads at most `unfilled.len()` bytes into memory we own.
                let n = unsafe {
                    libc::read(
                        fd.get_ref().as_raw_fd(),
                        unfilled.as_mut_ptr().cast(),
                        unfilled.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // A pseudo-terminal whose other end closed says EIO: that is an end.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Tty {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            // SAFETY: writes at most `data.len()` bytes from memory we borrow.
            match guard.try_io(|fd| {
                let n = unsafe {
                    libc::write(fd.get_ref().as_raw_fd(), data.as_ptr().cast(), data.len())
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
