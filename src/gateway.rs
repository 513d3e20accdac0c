//! The running gateway: listeners and the sessions they accept.
//!
//! Port routing: port `port_start` is bound at start-up; every other broker port is opened as soon as the
//! backend's metadata reveals its broker — from a probe at start-up and from every Metadata response that
//! passes through. Every port also answers bootstrap traffic.
//!
//! Host routing: one TLS port; the server name a client sends (SNI) says which virtual broker it wants, and a
//! name the gateway does not serve fails the TLS handshake.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use franzgate_api::auth::SessionAuth;
use franzgate_api::selector::ClusterSelector;
use franzgate_api::topology::{AdvertisedAddress, BrokerNaming, ClusterRole, SniTarget};
use franzgate_api::usage::UsageLedger;
use franzgate_api::vcluster::VirtualClusters;
use franzgate_api::{AuthStats, BoxKafkaService, FilterContext, Session};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::limit::ConcurrencyLimit;
use tracing::{debug, error, info, warn};

use crate::admin::{AdminState, serve_admin};
use crate::backend::BackendSecurityMap;
use crate::config::{ConfigFileError, FilterSpec, GatewayConfig};
use crate::metrics::GatewayMetrics;
use crate::net::Stream;
use crate::probe::probe_cluster;
use crate::registry::{FilterChain, FilterRegistry};
use crate::session::{SessionConfig, serve};
use crate::shutdown::{PortStops, ShutdownPolicy};
use crate::tls::TlsServer;
use crate::upstream::{Upstream, UpstreamConfig};
use crate::vcluster_state::StateStore;

/// The cluster id clients see when a failover is configured and `cluster_id` is not set.
pub const DEFAULT_CLUSTER_ID: &str = "franzgate";

/// How long start-up waits for the state topic when the token secret must be read from it or written to it.
const TOKEN_SECRET_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A validated gateway, ready to start.
pub struct Gateway {
    /// What listeners and sessions share once started.
    shared: Shared,
    /// Where listeners and the admin API bind.
    bind_host: String,
    /// The admin API's port.
    http_port: u16,
    /// Who may call the admin API.
    admin_users: Vec<crate::config::AdminUser>,
    /// Chargeback flushing to a Kafka topic, when configured.
    flush: Option<crate::chargeback_flush::Flush>,
    /// The virtual clusters filters read.
    vclusters: Arc<VirtualClusters>,
    /// Their state topic; only with a token secret, since tenants log in with tokens.
    state_store: Option<Arc<StateStore>>,
    /// How this instance takes part in the fleet, with a failover cluster configured (and
    /// `gateway.fleet.enabled`); its id is completed once the admin port is bound.
    fleet: Option<crate::fleet::FleetSettings>,
    /// The advertised host, part of the instance's default id.
    advertised_host: String,
    /// Automatic failover, when configured.
    automatic: Option<crate::fleet::AutomaticFailover>,
    /// How long start-up may take to read the fleet's decision.
    fleet_startup_wait: std::time::Duration,
    /// The service-account token secret.
    token_secret: Option<Vec<u8>>,
    /// Set when no token secret is configured and the gateway generates one (shared through the state topic).
    generated: Option<GeneratedSecret>,
    /// The admin API's body limit.
    admin_max_body: usize,
    /// The admin API's connection limits and timeouts.
    admin_limits: crate::admin::AdminLimits,
}

/// A token secret this instance generated, to be settled against the state topic at start-up: another instance
/// may have written one first, and then the chain is rebuilt with that one before any client is served.
struct GeneratedSecret {
    /// This instance's candidate (32 random bytes, base64url), which the chain was built with.
    candidate: String,
    /// What rebuilding the chain with another secret needs.
    registry: FilterRegistry,
    /// The filter list, the SASL filter's config included.
    filters: Vec<FilterSpec>,
    /// The SASL filter's position in `filters`.
    sasl: usize,
    /// The SASL filter's config (its secret replaced on a rebuild).
    auth: franzgate_filters::sasl::SaslConfig,
    /// What the factories get.
    ctx: FilterContext,
    /// Names the configuration in errors.
    source: String,
}

/// What every listener and session shares.
struct Shared {
    /// The filter chain, applied to every session's upstream.
    chain: FilterChain,
    /// The switchable state: which cluster new sessions use.
    selector: Arc<ClusterSelector>,
    /// The address and port range clients are told to use.
    advertised: Arc<AdvertisedAddress>,
    /// Backend connection settings.
    upstream: Arc<UpstreamConfig>,
    /// Per-session limits.
    session: SessionConfig,
    /// Requests in flight per session.
    max_in_flight: usize,
    /// Session ids, for logs.
    next_session_id: AtomicU64,
    /// Connections accepted per gateway port (read by tests and `/metrics`; not on the request path).
    accepted: Arc<std::sync::Mutex<std::collections::BTreeMap<u16, u64>>>,
    /// The TLS server, when clients connect with TLS.
    tls: Option<TlsServer>,
    /// Authentication outcomes.
    auth_stats: Arc<AuthStats>,
    /// Chargeback counts.
    usage: Arc<UsageLedger>,
    /// Runtime counters.
    metrics: Arc<GatewayMetrics>,
    /// Whether every filter is timed (`gateway.filter_latency_metrics`).
    time_filters: bool,
    /// Client connection limits.
    limiter: Arc<crate::limits::ConnectionLimiter>,
    /// Cancelled to stop the gateway.
    shutdown: CancellationToken,
    /// Each broker port's stop token (children of `shutdown`), for a graceful shutdown port by port.
    port_stops: PortStops,
    /// Every session task, so a graceful shutdown can wait for them to drain.
    sessions: TaskTracker,
    /// How a graceful shutdown proceeds.
    shutdown_policy: ShutdownPolicy,
}

/// Until a SASL client has authenticated, its frames may be at most this large (Kafka's default
/// `sasl.server.max.receive.size`).
const PRE_AUTH_MAX_FRAME: usize = 512 * 1024;

/// A started gateway. Dropping it does not stop it; call [`RunningGateway::shutdown`].
pub struct RunningGateway {
    /// The state its listeners share.
    shared: Arc<Shared>,
    /// The broker ports open.
    ports: watch::Receiver<BTreeSet<u16>>,
    /// Listeners, the port opener, the probes and the admin API.
    tasks: JoinSet<()>,
    /// Where the admin API listens.
    admin_addr: SocketAddr,
}

// === impl Gateway ===

impl Gateway {
    /// Validates the config and builds the filter chain from `registry`; `source` names the file in errors.
    pub fn new(config: &GatewayConfig, registry: &FilterRegistry, source: &str) -> Result<Self, ConfigFileError> {
        let built = config.built_clusters(source)?;
        let backends = BackendSecurityMap::load(&built).map_err(|e| ConfigFileError::new(source, e))?;
        let clusters: Vec<_> = built.into_iter().map(|b| b.cluster).collect();
        let primary = clusters.iter().find(|c| c.role == ClusterRole::Main).map(|c| c.name.clone()).unwrap_or_default();
        let selector = Arc::new(
            ClusterSelector::new(clusters)
                .ok_or_else(|| ConfigFileError::new(source, "no backend cluster configured"))?,
        );
        let advertised = Arc::new(config.advertised(&primary));
        let tls = match (&config.gateway.tls, config.gateway.security_protocol.uses_tls()) {
            (Some(tls), true) => Some(TlsServer::new(tls).map_err(|e| ConfigFileError::new(source, e))?),
            _ => None,
        };
        let auth_stats = Arc::new(AuthStats::default());
        let usage = Arc::new(UsageLedger::new(config.gateway.chargeback.limits()));
        let vclusters = Arc::new(VirtualClusters::new(config.gateway.virtual_clusters.mandatory));

        // Clients must see one cluster id whichever backend serves them (KIP-899 clients refuse a changed id),
        // so with a failover configured the id defaults to a constant rather than passing the backend's through.
        let cluster_id = config
            .gateway
            .cluster_id
            .clone()
            .or_else(|| (selector.clusters().len() > 1).then(|| DEFAULT_CLUSTER_ID.to_string()));
        let ctx = FilterContext {
            advertised: advertised.clone(),
            selector: selector.clone(),
            gateway_cluster_id: cluster_id,
            auth_stats: auth_stats.clone(),
            usage: usage.clone(),
            vclusters: vclusters.clone(),
            internal_topic_ids: Arc::default(),
        };
        let mut filters = config.filters.clone();
        // With no token secret configured, one is generated here and settled against the state topic at start.
        let candidate = match config.generates_token_secret() {
            true => Some(generate_token_secret().map_err(|e| ConfigFileError::new(source, e))?),
            false => None,
        };
        let mut auth = config.gateway.authentication.clone().unwrap_or_default();
        if let Some(candidate) = &candidate {
            auth.token_secret = Some(candidate.clone());
        }
        // SASL termination goes outermost: no other filter, and not the backend, sees an unauthenticated request.
        let sasl = franzgate_filters::sasl::TYPE_NAME;
        if config.gateway.security_protocol.uses_sasl() && !filters.iter().any(|f| f.kind == sasl) {
            let value = serde_yaml::to_value(&auth).map_err(|e| ConfigFileError::new(source, e.to_string()))?;
            filters.insert(0, FilterSpec { kind: sasl.to_string(), config: value });
        }
        // Tenant names are rewritten right inside SASL termination (wherever the YAML placed it), so every later
        // filter (and chargeback) sees backend names; without SASL only the mandatory-vcluster check has anything
        // to do.
        let prefix = franzgate_filters::topic_prefix::TYPE_NAME;
        let tenants_possible =
            config.gateway.security_protocol.uses_sasl() || config.gateway.virtual_clusters.mandatory;
        if tenants_possible && !filters.iter().any(|f| f.kind == prefix) {
            let after_sasl = filters.iter().position(|f| f.kind == sasl).map_or(0, |i| i + 1);
            filters.insert(after_sasl, FilterSpec { kind: prefix.to_string(), config: serde_yaml::Value::Null });
        }
        // The gateway's own topics are out of every client's reach: right inside the topic-prefix filter (tenants'
        // names arrive prefixed), or SASL termination, or outermost.
        let internal = internal_topics(config, &auth);
        let guard = franzgate_filters::internal_topics::TYPE_NAME;
        if !internal.is_empty() && !filters.iter().any(|f| f.kind == guard) {
            let inside =
                filters.iter().position(|f| f.kind == prefix).or_else(|| filters.iter().position(|f| f.kind == sasl));
            let config = franzgate_filters::internal_topics::InternalTopicsConfig { topics: internal };
            let value = serde_yaml::to_value(&config).map_err(|e| ConfigFileError::new(source, e.to_string()))?;
            filters.insert(inside.map_or(0, |i| i + 1), FilterSpec { kind: guard.to_string(), config: value });
        }
        let chain = registry.build_chain(&filters, &ctx, source)?;
        let generated = match (candidate, filters.iter().position(|f| f.kind == sasl)) {
            (Some(candidate), Some(sasl)) => Some(GeneratedSecret {
                candidate,
                registry: registry.clone(),
                filters: filters.clone(),
                sasl,
                auth: auth.clone(),
                ctx: ctx.clone(),
                source: source.to_string(),
            }),
            _ => None,
        };
        let mut metrics = if config.gateway.filter_latency_metrics {
            GatewayMetrics::with_filters(chain.names())
        } else {
            GatewayMetrics::default()
        };
        metrics.count_error_codes = config.gateway.error_code_metrics;
        metrics.memory = franzgate_api::budget::GatewayBudget::new(config.gateway.memory_budget_bytes);
        let metrics = Arc::new(metrics);
        let time_filters = config.gateway.filter_latency_metrics;
        let shutdown = CancellationToken::new();
        let shared = Shared {
            chain,
            selector,
            advertised,
            upstream: Arc::new(UpstreamConfig {
                connect_timeout: config.connect_timeout(),
                max_frame: config.gateway.max_frame_bytes,
                backends,
                metrics: metrics.clone(),
                request_timeout: (config.gateway.request_timeout_ms > 0)
                    .then(|| std::time::Duration::from_millis(config.gateway.request_timeout_ms)),
            }),
            session: SessionConfig {
                max_frame: config.gateway.max_frame_bytes,
                pre_auth_max_frame: config.gateway.security_protocol.uses_sasl().then_some(PRE_AUTH_MAX_FRAME),
                drain_timeout: std::time::Duration::from_millis(config.gateway.switch_drain_timeout_ms),
                max_in_flight: config.gateway.max_in_flight_per_session,
                idle_timeout: (config.gateway.idle_timeout_ms > 0)
                    .then(|| std::time::Duration::from_millis(config.gateway.idle_timeout_ms)),
                buffer_bytes: config.gateway.session_buffer_bytes,
                metrics: metrics.clone(),
            },
            max_in_flight: config.gateway.max_in_flight_per_session,
            next_session_id: AtomicU64::new(1),
            accepted: Default::default(),
            shutdown: shutdown.clone(),
            port_stops: PortStops::new(shutdown),
            sessions: TaskTracker::new(),
            shutdown_policy: ShutdownPolicy {
                drain_timeout: std::time::Duration::from_millis(config.gateway.shutdown_drain_timeout_ms),
                port_close_delay: std::time::Duration::from_millis(config.gateway.shutdown_port_close_delay_ms),
            },
            tls,
            auth_stats,
            usage,
            metrics,
            time_filters,
            limiter: Arc::new(crate::limits::ConnectionLimiter::new(
                config.gateway.max_connections,
                config.gateway.max_connections_per_ip,
            )),
        };
        let (admin_users, default_users) = config.admin_users();
        if default_users {
            warn!(
                "GATEWAY_ADMIN_API_USERS is not set: the admin API accepts the default admin/conduktor; set your own users"
            );
        }
        let chargeback = &config.gateway.chargeback;
        let flush = chargeback.flush_topic.clone().map(|topic| crate::chargeback_flush::Flush {
            topic,
            interval: std::time::Duration::from_secs(chargeback.flush_interval_seconds.max(1)),
            usage: shared.usage.clone(),
            selector: shared.selector.clone(),
            backends: shared.upstream.backends.clone(),
            timeout: shared.upstream.connect_timeout,
            max_frame: shared.upstream.max_frame,
        });
        let token_secret = auth.token_secret.clone().filter(|s| !s.is_empty()).map(String::into_bytes);
        let vc = &config.gateway.virtual_clusters;
        // State records are signed with a key derived from the configured token secret; a generated one is
        // read from the state topic first, and the store derives the key from it then.
        let configured_secret = token_secret.as_deref().filter(|_| generated.is_none());
        let state_store = token_secret.as_ref().filter(|_| vc.enabled).map(|_| {
            let store = StateStore::new(
                vclusters.clone(),
                shared.selector.clone(),
                shared.upstream.backends.clone(),
                vc.state_topic.clone(),
                shared.upstream.connect_timeout,
                shared.upstream.max_frame,
                std::time::Duration::from_millis(vc.refresh_interval_ms.max(100)),
            );
            let store = store.with_signing_secret(configured_secret).accepting_unsigned(vc.accept_unsigned_records);
            Arc::new(store.with_metrics(shared.metrics.clone()).with_topic_ids(ctx.internal_topic_ids.clone()))
        });
        let fleet_config = &config.gateway.fleet;
        let fleet =
            (fleet_config.enabled && shared.selector.clusters().len() > 1).then(|| crate::fleet::FleetSettings {
                id: fleet_config.instance_id.clone().filter(|id| !id.trim().is_empty()).unwrap_or_default(),
                admin: String::new(),
                topic: fleet_config.control_topic.clone(),
                poll_interval: std::time::Duration::from_millis(fleet_config.poll_interval_ms),
                announce_interval: std::time::Duration::from_millis(fleet_config.announce_interval_ms),
                timeout: shared.upstream.connect_timeout,
                max_frame: shared.upstream.max_frame,
            });
        Ok(Self {
            flush,
            vclusters,
            state_store,
            fleet,
            advertised_host: config.gateway.advertised_host.clone(),
            automatic: config.gateway.failover.automatic.then(|| {
                let failover = &config.gateway.failover;
                crate::fleet::AutomaticFailover {
                    unreachable_for: std::time::Duration::from_millis(failover.unreachable_for_ms),
                    quorum: failover.quorum,
                    fail_back: failover.fail_back,
                    probe_interval: std::time::Duration::from_millis(failover.probe_interval_ms),
                }
            }),
            fleet_startup_wait: std::time::Duration::from_millis(fleet_config.startup_read_timeout_ms),
            token_secret,
            generated,
            admin_max_body: config.gateway.admin_max_body_bytes,
            admin_limits: crate::admin::AdminLimits::from_config(&config.gateway),
            shared,
            bind_host: config.gateway.bind_host.clone(),
            http_port: config.gateway.http_port,
            admin_users,
        })
    }

    /// The filter chain, outermost first, as it will run.
    pub fn chain_names(&self) -> Vec<String> {
        self.shared.chain.names().map(str::to_string).collect()
    }

    /// Binds the first broker port, then serves until shut down. Other ports open as brokers are discovered.
    ///
    /// With a generated token secret, the state topic is read first (within a minute, retrying while the
    /// cluster is unreachable): the secret in it is adopted, or this instance's is written there, before the
    /// admin API and the broker ports serve anyone.
    pub async fn start(self) -> std::io::Result<RunningGateway> {
        let mut shared = self.shared;
        let first = bind(&self.bind_host, shared.advertised.port_start).await?;
        let (ports_tx, ports) = watch::channel(BTreeSet::from([shared.advertised.port_start]));
        let admin = bind(&self.bind_host, self.http_port).await?;
        let admin_addr = admin.local_addr()?;
        let mut token_secret = self.token_secret;
        let mut loaded = None;
        if let (Some(generated), Some(store)) = (self.generated, &self.state_store) {
            let established = store.establish_token_secret_within(&generated.candidate, TOKEN_SECRET_WAIT).await;
            let established = established.map_err(|reason| {
                std::io::Error::other(format!(
                    "no GATEWAY_USER_POOL_SECRET_KEY, and the generated token secret could not be read from or \
                     written to the state topic `{}` of cluster `{}` within {TOKEN_SECRET_WAIT:?}: {reason}; make \
                     the cluster reachable, or set GATEWAY_USER_POOL_SECRET_KEY",
                    store.topic,
                    shared.selector.active().cluster.name
                ))
            })?;
            if established.secret != generated.candidate {
                shared.chain = generated.rebuild(&established.secret).map_err(std::io::Error::other)?;
            }
            let origin = if established.written_here { "generated by this instance" } else { "read from the topic" };
            warn!(
                topic = %store.topic,
                "GATEWAY_USER_POOL_SECRET_KEY is not set: service-account tokens are signed with a generated secret \
                 ({origin}), kept in the state topic and shared by every gateway instance using it; set \
                 GATEWAY_USER_POOL_SECRET_KEY to choose your own"
            );
            token_secret = Some(established.secret.into_bytes());
            loaded = Some(established.records);
        }
        let shared = Arc::new(shared);
        let mut tasks = JoinSet::new();
        let fleet = self.fleet.map(|mut settings| {
            settings.admin = format!("{}:{}", self.advertised_host, admin_addr.port());
            if settings.id.is_empty() {
                settings.id = settings.admin.clone();
            }
            let backends = shared.upstream.backends.clone();
            Arc::new(crate::fleet::Fleet::new(settings, shared.selector.clone(), backends))
        });
        let admin_state = Arc::new(AdminState {
            selector: shared.selector.clone(),
            users: self.admin_users,
            ports: ports.clone(),
            probe_timeout: shared.upstream.connect_timeout,
            metrics: shared.metrics.clone(),
            auth_stats: shared.auth_stats.clone(),
            usage: shared.usage.clone(),
            accepted: shared.accepted.clone(),
            vclusters: self.vclusters.clone(),
            state_store: self.state_store.clone(),
            fleet: fleet.clone(),
            token_secret,
            max_body: self.admin_max_body,
            draining: shared.port_stops.draining(),
            limits: self.admin_limits,
        });
        if let Some(store) = &self.state_store {
            // Tenants are known before the first client arrives; an unreachable cluster is retried by the
            // refresh loop meanwhile.
            let result = match loaded {
                Some(records) => Ok(records),
                None => store.refresh().await,
            };
            match result {
                Ok(n) => {
                    info!(topic = %store.topic, records = n, vclusters = self.vclusters.list().len(), "virtual-cluster state loaded")
                }
                Err(reason) => {
                    warn!(topic = %store.topic, %reason, "cannot load the virtual-cluster state yet; retrying in the background")
                }
            }
            tasks.spawn(store.clone().run(shared.shutdown.clone()));
        }
        tasks.spawn(serve_admin(admin, admin_state, shared.shutdown.clone()));
        info!(%admin_addr, "admin API listening");
        // Probe every cluster before serving: a SASL client's first ApiVersions is answered from the versions the
        // backend advertised to these probes, so a client that arrived first could pick a version the backend
        // does not serve. Bounded, so an unreachable cluster delays start-up by one connection timeout at most.
        let probes = shared.selector.clusters().iter().cloned().map(|cluster| {
            let timeout = shared.upstream.connect_timeout;
            let max_frame = shared.upstream.max_frame;
            let security = shared.upstream.backends.get(&cluster.name);
            async move {
                match probe_cluster(&cluster, &security, timeout, max_frame).await {
                    Ok(n) => info!(cluster = %cluster.name, brokers = n, "backend cluster reachable"),
                    Err(e) => warn!(cluster = %cluster.name, reason = %e, "start-up probe of the backend cluster failed (unreachable, or refused the gateway's credentials); \
                        broker ports will open when a client's metadata reveals them"),
                }
            }
        });
        let all = futures::future::join_all(probes);
        let bound = shared.upstream.connect_timeout + std::time::Duration::from_secs(1);
        if tokio::time::timeout(bound, all).await.is_err() {
            warn!("start-up probes did not finish within {bound:?}; serving anyway");
        }
        if let Some(fleet) = &fleet {
            // Clients are accepted only once the fleet's decision is applied: none is served by the wrong cluster.
            fleet.load(self.fleet_startup_wait).await;
            tasks.spawn(fleet.clone().run(shared.shutdown.clone()));
            if let Some(automatic) = self.automatic.clone() {
                info!(?automatic, "automatic failover is on");
                tasks.spawn(fleet.clone().watch_primary(automatic, shared.shutdown.clone()));
            }
        }
        tasks.spawn(accept_loop(first, shared.clone()));
        if let Some(flush) = self.flush {
            tasks.spawn(flush.run(shared.shutdown.clone()));
        }
        if shared.advertised.naming == BrokerNaming::Port {
            tasks.spawn(open_discovered_ports(shared.clone(), self.bind_host.clone(), ports_tx));
        }
        Ok(RunningGateway { shared, ports, tasks, admin_addr })
    }
}

/// The topics the gateway keeps for itself on the backend: the state topic (whenever it is used: a token
/// secret, configured or generated, and virtual clusters enabled) and the chargeback flush topic.
fn internal_topics(config: &GatewayConfig, auth: &franzgate_filters::sasl::SaslConfig) -> Vec<String> {
    let vc = &config.gateway.virtual_clusters;
    let state_used = vc.enabled && auth.token_secret.as_ref().is_some_and(|s| !s.is_empty());
    let state = state_used.then(|| vc.state_topic.clone());
    let fleet = &config.gateway.fleet;
    let control = (fleet.enabled && config.clusters.len() > 1).then(|| fleet.control_topic.clone());
    let flush = config.gateway.chargeback.flush_topic.clone();
    state.into_iter().chain(control).chain(flush).filter(|t| !t.is_empty()).collect()
}

/// 32 bytes from the operating system's CSPRNG, base64url: the text is the HMAC key, as a configured
/// `GATEWAY_USER_POOL_SECRET_KEY` is.
fn generate_token_secret() -> Result<String, String> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| format!("cannot generate a token secret: no randomness from the operating system: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

// === impl GeneratedSecret ===

impl GeneratedSecret {
    /// The filter chain again, its SASL filter verifying tokens signed with `secret`.
    fn rebuild(mut self, secret: &str) -> Result<FilterChain, String> {
        self.auth.token_secret = Some(secret.to_string());
        let value = serde_yaml::to_value(&self.auth).map_err(|e| e.to_string())?;
        let spec = self.filters.get_mut(self.sasl).ok_or("the SASL filter is missing from the chain")?;
        spec.config = value;
        self.registry.build_chain(&self.filters, &self.ctx, &self.source).map_err(|e| e.to_string())
    }
}

async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot bind {host}:{port}: {e}")))
}

/// Opens a listener for every virtual broker any cluster's node map assigns, within the port range.
async fn open_discovered_ports(shared: Arc<Shared>, bind_host: String, ports: watch::Sender<BTreeSet<u16>>) {
    let mut watches: Vec<_> = shared.selector.clusters().iter().map(|c| c.nodes.watch_assigned()).collect();
    let mut listeners = JoinSet::new();
    let port_count = usize::from(shared.advertised.port_count);
    let mut warned_short = false;
    loop {
        let assigned = watches.iter_mut().map(|w| *w.borrow_and_update()).max().unwrap_or(0);
        // More brokers than ports: the partitions the others lead cannot be reached, and clients just time out.
        if assigned > port_count && !warned_short {
            warned_short = true;
            error!(
                brokers = assigned,
                port_count,
                "a cluster has more brokers than gateway.port_count (GATEWAY_PORT_COUNT): brokers beyond it get no port and clients cannot reach the partitions they lead"
            );
        }
        let wanted = assigned.min(port_count);
        for virtual_id in 0..wanted {
            let Some(port) = i32::try_from(virtual_id).ok().and_then(|v| shared.advertised.port_of(v)) else {
                continue;
            };
            if ports.borrow().contains(&port) {
                continue;
            }
            match bind(&bind_host, port).await {
                Ok(listener) => {
                    info!(port, virtual_id, "broker port open");
                    listeners.spawn(accept_loop(listener, shared.clone()));
                    ports.send_modify(|p| {
                        p.insert(port);
                    });
                }
                Err(e) => {
                    error!(port, reason = %e, "cannot open broker port; clients cannot reach this broker")
                }
            }
        }
        let changed = futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            (result, _, _) = changed => if result.is_err() { break },
            _ = shared.shutdown.cancelled() => break,
        }
    }
    listeners.shutdown().await;
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let stop = shared.port_stops.token(port);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                start_session(stream, peer, port, &shared);
            }
            // Running out of file descriptors must not end the listener: back off and retry.
            Err(e) => {
                crate::warn_limited!(port, reason = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

fn start_session(tcp: tokio::net::TcpStream, peer: SocketAddr, port: u16, shared: &Arc<Shared>) {
    if let Ok(mut accepted) = shared.accepted.lock() {
        *accepted.entry(port).or_default() += 1;
    }
    let permit = match shared.limiter.try_acquire(peer.ip()) {
        Ok(permit) => permit,
        Err(limit) => {
            let counter = match limit {
                crate::limits::LimitReached::Total(_) => &shared.metrics.refused_max_connections,
                crate::limits::LimitReached::PerIp(_) => &shared.metrics.refused_max_connections_per_ip,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            crate::warn_limited!(%peer, port, reason = %limit, "refused a client connection");
            return;
        }
    };
    let shared = shared.clone();
    // The TLS handshake runs in the session's own task: a slow client must not hold up the accept loop.
    shared.clone().sessions.spawn(async move {
        let (stream, virtual_node, auth) = match &shared.tls {
            None => (Stream::Tcp(tcp), shared.advertised.virtual_id_of(port), SessionAuth::default()),
            Some(tls) => {
                let mut target = None;
                let host_routing = shared.advertised.naming != BrokerNaming::Port;
                let check = |name: Option<&str>| {
                    if !host_routing {
                        return Ok(());
                    }
                    let name = name.ok_or("TLS client sent no server name (SNI); host routing needs it")?;
                    match shared.advertised.sni_target(name) {
                        SniTarget::Unknown => {
                            Err(format!("unknown TLS server name `{name}`: not a host this gateway serves"))
                        }
                        SniTarget::Bootstrap => Ok(()),
                        SniTarget::Broker(id) => {
                            target = Some(id);
                            Ok(())
                        }
                    }
                };
                match tls.accept(tcp, check).await {
                    Ok(accepted) => {
                        let virtual_node = if host_routing { target } else { shared.advertised.virtual_id_of(port) };
                        (accepted.stream, virtual_node, SessionAuth::new(accepted.principal))
                    }
                    Err(reason) => {
                        crate::warn_limited!(%peer, port, %reason, "refused a client connection");
                        return;
                    }
                }
            }
        };
        run_session(stream, peer, port, virtual_node, auth, &shared).await;
        drop(permit);
    });
}

async fn run_session(
    stream: Stream,
    peer: SocketAddr,
    port: u16,
    virtual_node: Option<i32>,
    auth: SessionAuth,
    shared: &Arc<Shared>,
) {
    // Subscribe before reading the active cluster: a switch in between is then seen as a change.
    let switched = shared.selector.subscribe();
    let active = shared.selector.active();
    let id = shared.next_session_id.fetch_add(1, Ordering::Relaxed);
    let session = Session::new(id, peer, port, active.cluster.clone(), active.epoch)
        .with_virtual_node(virtual_node)
        .with_auth(auth)
        .with_budget(shared.metrics.memory.session(shared.session.buffer_bytes));
    let session = Arc::new(session);
    let lost = CancellationToken::new();
    let upstream = Upstream::new(session.clone(), shared.upstream.clone(), lost.clone());
    let stack = if shared.time_filters {
        shared.chain.apply_timed(BoxKafkaService::new(upstream), &shared.metrics)
    } else {
        shared.chain.apply(BoxKafkaService::new(upstream))
    };
    let stack = ConcurrencyLimit::new(stack, shared.max_in_flight);
    debug!(session = session.id, %peer, port, ?virtual_node, "accepted");
    let stop = shared.port_stops.token(port).child_token();
    let signals = crate::session::Signals { backend_lost: lost, shutdown: stop, switched };
    serve(stream, session, stack, signals, shared.session.clone()).await;
}

// === impl RunningGateway ===

impl RunningGateway {
    /// The bytes all sessions may buffer together, and what they buffer now.
    pub fn memory_budget(&self) -> &Arc<franzgate_api::budget::GatewayBudget> {
        &self.shared.metrics.memory
    }

    /// The broker ports currently open.
    pub fn ports(&self) -> BTreeSet<u16> {
        self.ports.borrow().clone()
    }

    /// Waits until `count` broker ports are open (tests and the demo use this after start-up).
    pub async fn wait_for_ports(&mut self, count: usize) -> BTreeSet<u16> {
        let _ = self.ports.wait_for(|p| p.len() >= count).await;
        self.ports()
    }

    /// How many client connections each gateway port has accepted.
    pub fn accepted_per_port(&self) -> std::collections::BTreeMap<u16, u64> {
        self.shared.accepted.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// The chargeback ledger.
    pub fn usage(&self) -> &Arc<UsageLedger> {
        &self.shared.usage
    }

    /// Authentication (successes, failures) since start.
    pub fn auth_counts(&self) -> (u64, u64) {
        self.shared.auth_stats.counts()
    }

    /// The address clients are told to use.
    pub fn advertised(&self) -> &AdvertisedAddress {
        &self.shared.advertised
    }

    /// Where the admin HTTP API listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The cluster selector (the switchable state the admin API drives).
    pub fn selector(&self) -> &Arc<ClusterSelector> {
        &self.shared.selector
    }

    /// Stops accepting, and closes sessions once their in-flight requests are answered.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// Runs until [`Self::shutdown`] is called.
    pub async fn wait(mut self) {
        self.shared.shutdown.cancelled().await;
        self.stop_tasks().await;
    }

    /// Stops gracefully (what SIGTERM does): broker ports close one by one (`shutdown_port_close_delay_ms`
    /// apart), their sessions stop reading and answer what is in flight (within `shutdown_drain_timeout_ms`),
    /// then the admin API and background tasks stop (a chargeback flush runs one last time).
    pub async fn shutdown_gracefully(mut self) {
        crate::shutdown::drain(&self.shared.port_stops, &self.shared.sessions, self.shared.shutdown_policy).await;
        self.shared.shutdown.cancel();
        self.stop_tasks().await;
        info!("shut down");
    }

    /// Lets cancelled background tasks finish (a last chargeback flush), then aborts what is left.
    async fn stop_tasks(&mut self) {
        let finish = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(std::time::Duration::from_secs(5), finish).await.is_err() {
            warn!("background tasks did not stop within 5 s; aborting them");
        }
        self.tasks.shutdown().await;
    }
}
