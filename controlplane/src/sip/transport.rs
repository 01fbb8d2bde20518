//! SIP over UDP and TCP on kernel sockets. UDP: one datagram, one message. TCP: a
//! stream of messages, each its header block and a Content-Length body (RFC 3261
//! 18.3); a header block or body over [`MAX_MESSAGE`] or a missing/bad Content-Length
//! gets 400 and the connection is closed. Every message goes to [`Ua::handle`].

use super::ua::{Peer, Ua};
use super::{Listen, Transport};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// The largest SIP message we take (header block plus body).
pub const MAX_MESSAGE: usize = 65_535;
/// TCP connections open at once at most; more are closed on accept.
pub const MAX_TCP_CONNECTIONS: usize = 4096;

/// A bound listener, ready to serve.
pub enum Bound {
    Udp(Arc<UdpSocket>),
    Tcp(TcpListener),
}

/// Bind `l`.
pub async fn bind(l: Listen) -> std::io::Result<Bound> {
    Ok(match l.transport {
        Transport::Udp => Bound::Udp(Arc::new(UdpSocket::bind(l.addr).await?)),
        Transport::Tcp => Bound::Tcp(TcpListener::bind(l.addr).await?),
    })
}

/// Serve `b` until the task is dropped.
pub async fn serve(b: Bound, ua: Arc<Ua>) {
    match b {
        Bound::Udp(socket) => serve_udp(socket, ua).await,
        Bound::Tcp(listener) => serve_tcp(listener, ua).await,
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, ua: Arc<Ua>) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (n, addr) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "SIP UDP receive");
                continue;
            }
        };
        let msg = &buf[..n];
        // Keep-alives (RFC 5626 CRLF) and empty datagrams are not messages.
        if msg.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let peer = Peer::Udp {
            socket: socket.clone(),
            addr,
        };
        ua.handle(msg, &peer);
    }
}

async fn serve_tcp(listener: TcpListener, ua: Arc<Ua>) {
    let open = Arc::new(());
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "SIP TCP accept");
                continue;
            }
        };
        // Each connection holds a clone; the count is how many are open.
        if Arc::strong_count(&open) > MAX_TCP_CONNECTIONS {
            tracing::debug!(peer = %addr, "SIP TCP connection refused: too many open");
            continue;
        }
        let guard = open.clone();
        let ua = ua.clone();
        tokio::spawn(async move {
            connection(stream, addr, ua).await;
            drop(guard);
        });
    }
}

/// Where the header block ends (after its blank line), if it has.
fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The Content-Length of a header block (`Content-Length` or its compact form `l`).
pub fn content_length(head: &[u8]) -> Result<usize, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "header block is not UTF-8")?;
    let mut found = None;
    for line in text.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
                let n = value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| "malformed Content-Length")?;
                if found.is_some_and(|f| f != n) {
                    return Err("conflicting Content-Length headers");
                }
                found = Some(n);
            }
        }
    }
    found.ok_or("Content-Length is required over TCP")
}

async fn connection(stream: TcpStream, addr: std::net::SocketAddr, ua: Arc<Ua>) {
    let Some((peer, rd, writer)) = open(stream, addr) else {
        return;
    };
    read_messages(rd, &peer, &ua).await;
    drop(peer);
    let _ = writer.await;
}

/// A connection's peer (its writer task takes whole messages) and its reading half.
fn open(
    stream: TcpStream,
    addr: std::net::SocketAddr,
) -> Option<(Peer, OwnedReadHalf, tokio::task::JoinHandle<()>)> {
    let local = stream.local_addr().ok()?;
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if wr.write_all(&m).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    Some((Peer::Tcp { tx, addr, local }, rd, writer))
}

/// Open a TCP connection from `from` (a listener's address, any port) to `to` for
/// requests we send (dial-out); what comes back on it goes to [`Ua::handle`]. The
/// connection stays open while the returned peer (or a clone) lives.
pub async fn connect(
    from: std::net::IpAddr,
    to: std::net::SocketAddr,
    ua: Arc<Ua>,
) -> std::io::Result<Peer> {
    let socket = match from {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(std::net::SocketAddr::new(from, 0))?;
    let stream = socket.connect(to).await?;
    let (peer, rd, writer) = open(stream, to)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotConnected, "no local address"))?;
    let reader_peer = peer.clone();
    tokio::spawn(async move {
        read_messages(rd, &reader_peer, &ua).await;
        drop(reader_peer);
        let _ = writer.await;
    });
    Ok(peer)
}

/// Read whole messages from `rd` and hand each to `ua`, until the stream ends or
/// cannot be framed.
async fn read_messages(mut rd: OwnedReadHalf, peer: &Peer, ua: &Arc<Ua>) {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 8192];
    'read: loop {
        // Every whole message in the buffer, then read more.
        loop {
            // Leading CRLFs are keep-alives.
            let skip = buf
                .iter()
                .take_while(|b| **b == b'\r' || **b == b'\n')
                .count();
            buf.drain(..skip);
            let Some(end) = header_end(&buf) else {
                if buf.len() > MAX_MESSAGE {
                    ua.malformed(&buf, "header block too long", peer);
                    break 'read;
                }
                break;
            };
            // 400, then closed: without a length the stream cannot be framed again.
            let len = match content_length(&buf[..end]) {
                Ok(n) if end + n <= MAX_MESSAGE => n,
                Ok(_) => {
                    ua.malformed(&buf[..end], "message too long", peer);
                    break 'read;
                }
                Err(why) => {
                    ua.malformed(&buf[..end], why, peer);
                    break 'read;
                }
            };
            if buf.len() < end + len {
                break;
            }
            let msg: Vec<u8> = buf.drain(..end + len).collect();
            ua.handle(&msg, peer);
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_frames_tcp_messages() {
        let h = b"INVITE sip:x SIP/2.0\r\nContent-Length: 12\r\n\r\n";
        assert_eq!(header_end(h), Some(h.len()));
        assert_eq!(content_length(h), Ok(12));
        assert_eq!(content_length(b"BYE sip:x SIP/2.0\r\nl: 0\r\n\r\n"), Ok(0));
        assert!(content_length(b"BYE sip:x SIP/2.0\r\n\r\n").is_err());
        assert!(content_length(b"BYE sip:x SIP/2.0\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(content_length(
            b"BYE sip:x SIP/2.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
        )
        .is_err());
        assert_eq!(header_end(b"INVITE sip:x SIP/2.0\r\n"), None);
    }
}
