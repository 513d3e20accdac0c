#![allow(dead_code)] // each target uses part of it
//! Shared by the fuzz targets: a session, and a tenant session with a registry that knows its virtual cluster.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use franzgate_api::auth::SessionAuth;
use franzgate_api::topology::BackendCluster;
use franzgate_api::vcluster::{StateRecord, VirtualClusters};
use franzgate_api::{Principal, PrincipalSource, Session};

/// A plain session.
pub fn session() -> Arc<Session> {
    static SESSION: OnceLock<Arc<Session>> = OnceLock::new();
    SESSION
        .get_or_init(|| {
            let peer = SocketAddr::from(([127, 0, 0, 1], 1));
            Arc::new(Session::new(1, peer, 9092, Arc::new(BackendCluster::new("main", vec![])), 0))
        })
        .clone()
}

/// A session of service account `sa` in virtual cluster `teamA` (prefix `teamA.`), and the registry.
pub fn tenant() -> (Arc<Session>, Arc<VirtualClusters>) {
    static TENANT: OnceLock<(Arc<Session>, Arc<VirtualClusters>)> = OnceLock::new();
    TENANT
        .get_or_init(|| {
            let registry = VirtualClusters::new(false);
            registry.apply(&StateRecord::VirtualCluster { name: "teamA".into(), prefix: "teamA.".into() });
            let peer = SocketAddr::from(([127, 0, 0, 1], 1));
            let auth = SessionAuth::new(None);
            auth.set_sasl_principal(Principal {
                name: "sa".into(),
                vcluster: Some("teamA".into()),
                generation: 0,
                source: PrincipalSource::ServiceAccountToken,
            });
            let cluster = Arc::new(BackendCluster::new("main", vec![]));
            (Arc::new(Session::new(2, peer, 9092, cluster, 0).with_auth(auth)), Arc::new(registry))
        })
        .clone()
}
