//! What the server knows of each accepted connection, for every request
//! on it: its addresses and its requests in flight.
//!
//! [`ApiServer`](crate::ApiServer) wraps each accepted TCP stream in
//! [`Counted`], whose tonic connect info, [`ConnectionInfo`], tonic puts
//! in every request's extensions (over plaintext and TLS alike). The
//! counter is the connection's own, so the shed layer
//! ([`crate::shed`]) counts a request with one atomic operation on it,
//! with no map of connections and no lock every request would share.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::Request;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// An accepted connection's stream, with its requests-in-flight counter.
#[derive(Debug)]
pub struct Counted<IO> {
    io: IO,
    in_flight: Arc<AtomicUsize>,
}

impl<IO> Counted<IO> {
    /// `io` with a counter of its own, at zero.
    pub fn new(io: IO) -> Self {
        Self {
            io,
            in_flight: Arc::default(),
        }
    }
}

/// A connection as its requests see it (see the module docs).
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    tcp: TcpConnectInfo,
    in_flight: Arc<AtomicUsize>,
}

impl ConnectionInfo {
    /// The peer's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.tcp.remote_addr()
    }

    /// The peer address of `request`'s connection: from its
    /// [`ConnectionInfo`], or tonic's own [`TcpConnectInfo`] when it was
    /// served by a server that does not count (tests build such).
    pub fn peer_of<B>(request: &Request<B>) -> Option<SocketAddr> {
        let extensions = request.extensions();
        extensions.get::<Self>().map_or_else(
            || extensions.get::<TcpConnectInfo>()?.remote_addr(),
            Self::remote_addr,
        )
    }

    /// Take one of the connection's `limit` places, if one is free.
    pub(crate) fn take_place(&self, limit: usize) -> Option<Place> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Place(Arc::clone(&self.in_flight)))
    }
}

/// A request's place on its connection, given back when dropped.
#[derive(Debug)]
pub(crate) struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<IO: Connected<ConnectInfo = TcpConnectInfo>> Connected for Counted<IO> {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        ConnectionInfo {
            tcp: self.io.connect_info(),
            in_flight: Arc::clone(&self.in_flight),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ConnectionInfo {
        ConnectionInfo {
            tcp: TcpConnectInfo {
                local_addr: None,
                remote_addr: "127.0.0.1:4000".parse().ok(),
            },
            in_flight: Arc::default(),
        }
    }

    #[test]
    fn a_connection_has_limit_places_and_a_dropped_request_gives_its_back() {
        let conn = info();
        // Every request's copy of the info counts on the same counter.
        let copy = conn.clone();
        let first = conn.take_place(2).expect("a first place");
        let second = copy.take_place(2).expect("a second place");
        assert!(conn.take_place(2).is_none(), "a third beyond the limit");
        drop(first);
        let third = copy.take_place(2).expect("the first's place, given back");
        drop((second, third));
        assert_eq!(conn.in_flight.load(Ordering::Acquire), 0);
        // Another connection counts on its own.
        let other = info();
        let _a = other.take_place(1).expect("its own place");
        let _b = conn.take_place(1).expect("unaffected by the other");
    }

    #[test]
    fn the_peer_comes_from_either_connect_info() {
        let mut request = Request::new(());
        assert_eq!(ConnectionInfo::peer_of(&request), None);
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: "10.0.0.9:1".parse().ok(),
        });
        assert_eq!(ConnectionInfo::peer_of(&request), "10.0.0.9:1".parse().ok());
        request.extensions_mut().insert(info());
        assert_eq!(
            ConnectionInfo::peer_of(&request),
            "127.0.0.1:4000".parse().ok()
        );
    }
}
