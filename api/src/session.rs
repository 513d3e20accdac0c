//! Per-connection facts shared by every request of one client connection.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::SessionAuth;
use crate::budget::SessionBudget;
use crate::topology::BackendCluster;

/// One client connection to the gateway.
#[derive(Debug)]
pub struct Session {
    /// Unique within this gateway process; appears in every log line of the connection.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The gateway port the client connected to.
    pub listener_port: u16,
    /// The virtual broker this connection addresses, from its port (port routing) or its TLS server name
    /// (host routing); `None` for bootstrap connections.
    pub virtual_node: Option<i32>,
    /// The backend cluster this session is bound to for its whole life.
    pub cluster: Arc<BackendCluster>,
    /// The cluster selector's epoch when the session was bound; a switch moves the epoch on.
    pub epoch: u64,
    /// Who the client is, once known.
    pub auth: SessionAuth,
    /// The bytes this connection may buffer, requests and responses (see [`crate::budget`]).
    pub budget: Arc<SessionBudget>,
}

impl Session {
    /// A session with no virtual broker and no principal yet.
    pub fn new(id: u64, peer: SocketAddr, listener_port: u16, cluster: Arc<BackendCluster>, epoch: u64) -> Self {
        Self {
            id,
            peer,
            listener_port,
            virtual_node: None,
            cluster,
            epoch,
            auth: SessionAuth::default(),
            budget: SessionBudget::unlimited(),
        }
    }

    /// Sets the virtual broker the connection addresses.
    pub fn with_virtual_node(mut self, virtual_node: Option<i32>) -> Self {
        self.virtual_node = virtual_node;
        self
    }

    /// Sets the connection's memory budget (unlimited otherwise).
    pub fn with_budget(mut self, budget: Arc<SessionBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// Sets the authentication state established before the first request (a TLS client certificate).
    pub fn with_auth(mut self, auth: SessionAuth) -> Self {
        self.auth = auth;
        self
    }
}
