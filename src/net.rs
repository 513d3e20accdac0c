//! Byte streams the gateway speaks Kafka over: plain TCP, or TLS (as a server to clients, as a client to
//! brokers).
//!
//! Plain TCP keeps tokio's lock-free owned halves; TLS streams are split with `tokio::io::split`, since a TLS
//! session's state is shared by both directions.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::{client, server};

/// One connection.
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS terminated by the gateway (a client connection).
    TlsServer(Box<server::TlsStream<TcpStream>>),
    /// TLS originated by the gateway (a backend connection).
    TlsClient(Box<client::TlsStream<TcpStream>>),
}

/// The reading half of a [`Stream`].
pub enum ReadHalf {
    /// Plain TCP.
    Tcp(OwnedReadHalf),
    /// TLS, server side.
    TlsServer(tokio::io::ReadHalf<server::TlsStream<TcpStream>>),
    /// TLS, client side.
    TlsClient(tokio::io::ReadHalf<client::TlsStream<TcpStream>>),
}

/// The writing half of a [`Stream`].
pub enum WriteHalf {
    /// Plain TCP.
    Tcp(OwnedWriteHalf),
    /// TLS, server side.
    TlsServer(tokio::io::WriteHalf<server::TlsStream<TcpStream>>),
    /// TLS, client side.
    TlsClient(tokio::io::WriteHalf<client::TlsStream<TcpStream>>),
}

// === impl Stream ===

impl Stream {
    /// Splits into halves that can be used from different tasks.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Self::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Self::TlsServer(s) => {
                let (r, w) = tokio::io::split(*s);
                (ReadHalf::TlsServer(r), WriteHalf::TlsServer(w))
            }
            Self::TlsClient(s) => {
                let (r, w) = tokio::io::split(*s);
                (ReadHalf::TlsClient(r), WriteHalf::TlsClient(w))
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::TlsServer(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::TlsClient(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::TlsServer(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::TlsClient(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::TlsServer(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::TlsClient(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::TlsServer(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::TlsClient(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

// === impl ReadHalf ===

impl AsyncRead for ReadHalf {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::TlsServer(s) => Pin::new(s).poll_read(cx, buf),
            Self::TlsClient(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

// === impl WriteHalf ===

impl AsyncWrite for WriteHalf {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::TlsServer(s) => Pin::new(s).poll_write(cx, buf),
            Self::TlsClient(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::TlsServer(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::TlsClient(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::TlsServer(s) => s.is_write_vectored(),
            Self::TlsClient(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::TlsServer(s) => Pin::new(s).poll_flush(cx),
            Self::TlsClient(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::TlsServer(s) => Pin::new(s).poll_shutdown(cx),
            Self::TlsClient(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
