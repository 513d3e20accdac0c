//! Per-connection facts shared by every request of one client connection.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::topology::BackendCluster;

/// One client connection to the gateway.
#[derive(Debug)]
pub struct Session {
    /// Unique within this gateway process; appears in every log line of the connection.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The gateway port the client connected to; port routing derives the broker from it.
    pub listener_port: u16,
    /// The backend cluster this session is bound to for its whole life.
    pub cluster: Arc<BackendCluster>,
    /// The cluster selector's epoch when the session was bound; a switch moves the epoch on.
    pub epoch: u64,
}
