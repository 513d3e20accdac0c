//! Runtime metrics and their Prometheus text rendering (`GET /metrics`).
//!
//! Counters are plain atomics updated on the request path (a few relaxed increments per request); everything
//! else — the active cluster, switches, authentication and chargeback counts — is read from where it already
//! lives when `/metrics` is scraped.

mod error_codes;

pub use error_codes::error_codes;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use franzgate_api::AuthStats;
use franzgate_api::kafka_protocol::messages::ApiKey;
use franzgate_api::selector::ClusterSelector;
use franzgate_api::usage::UsageLedger;

/// Api keys tracked individually; higher (unknown) keys share the last slot.
const API_SLOTS: usize = 128;
/// Latency histogram bucket bounds, seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The gateway's own counters.
#[derive(Debug)]
pub struct GatewayMetrics {
    /// Client connections currently open.
    pub client_connections_open: AtomicI64,
    /// Backend connections opened since start.
    pub upstream_connections_opened: AtomicU64,
    /// Backend connections currently open.
    pub upstream_connections_open: AtomicI64,
    /// Request bytes received from clients.
    pub bytes_in: AtomicU64,
    /// Response bytes sent to clients.
    pub bytes_out: AtomicU64,
    /// Requests currently being served.
    pub in_flight: AtomicI64,
    /// Client connections closed at once for `max_connections`.
    pub refused_max_connections: AtomicU64,
    /// Client connections closed at once for `max_connections_per_ip`.
    pub refused_max_connections_per_ip: AtomicU64,
    /// Sessions closed for `idle_timeout_ms`.
    pub sessions_closed_idle: AtomicU64,
    /// Admin API requests refused (413) for `admin_max_body_bytes`.
    pub refused_admin_body: AtomicU64,
    /// Backend requests not answered within `request_timeout_ms` (each gave up its backend connection).
    pub backend_request_timeouts: AtomicU64,
    /// Client connections closed for a frame larger than `max_frame_bytes`.
    pub refused_oversized_frames: AtomicU64,
    /// Times a session reached `max_in_flight_per_session` and stopped reading until a response went out.
    pub in_flight_limit_reached: AtomicU64,
    /// State-topic records ignored for lacking a valid signature (written by someone other than the fleet).
    pub state_records_rejected: AtomicU64,
    /// The bytes all sessions may buffer (`gateway.memory_budget_bytes`), what they buffer, and its waits.
    pub memory: std::sync::Arc<franzgate_api::budget::GatewayBudget>,
    /// The admin API's connections.
    pub admin: AdminConnectionMetrics,
    /// Per api key: requests, and the latency histogram.
    per_api: Vec<ApiCounters>,
    /// Per filter (outermost first), when filter timing is on: its name and latency histogram.
    per_filter: Vec<(String, ApiCounters)>,
    /// Whether responses are decoded to count their error codes (`gateway.error_code_metrics`).
    pub count_error_codes: bool,
    /// Non-zero error codes seen in responses, per (api key, code).
    errors: Mutex<BTreeMap<(i16, i16), u64>>,
}

/// The admin API's connections: open, evicted, refused, timed out.
#[derive(Debug, Default)]
pub struct AdminConnectionMetrics {
    /// Admin connections currently open.
    pub open: AtomicI64,
    /// Idle admin connections closed to make room for a new one.
    pub evicted: AtomicU64,
    /// Admin connections refused at `admin_max_connections` with none idle to evict.
    pub refused_max_connections: AtomicU64,
    /// Admin connections refused for the file-descriptor reserve with none idle to evict.
    pub refused_descriptor_reserve: AtomicU64,
    /// Admin connections closed for `admin_header_read_timeout_ms`.
    pub header_read_timeouts: AtomicU64,
    /// Admin connections closed for `admin_idle_timeout_ms`.
    pub idle_timeouts: AtomicU64,
    /// Admin requests answered 503 for `admin_request_timeout_ms`.
    pub request_timeouts: AtomicU64,
}

impl AdminConnectionMetrics {
    fn render(&self, r: &mut String) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        gauge(r, "franzgate_admin_connections_open", "Admin API connections open.", self.open.load(Ordering::Relaxed));
        counter(
            r,
            "franzgate_admin_connections_evicted_total",
            "Idle admin API connections closed to make room for a new one (admin_max_connections or the file-descriptor reserve).",
            load(&self.evicted),
        );
        header(
            r,
            "franzgate_admin_connections_refused_total",
            "counter",
            "Admin API connections refused with none idle to evict, by limit.",
        );
        let _ = writeln!(
            r,
            "franzgate_admin_connections_refused_total{{limit=\"admin_max_connections\"}} {}",
            load(&self.refused_max_connections)
        );
        let _ = writeln!(
            r,
            "franzgate_admin_connections_refused_total{{limit=\"descriptor_reserve\"}} {}",
            load(&self.refused_descriptor_reserve)
        );
        header(
            r,
            "franzgate_admin_timeouts_total",
            "counter",
            "Admin API connections closed, or requests answered 503, by timeout.",
        );
        let _ = writeln!(
            r,
            "franzgate_admin_timeouts_total{{timeout=\"header_read\"}} {}",
            load(&self.header_read_timeouts)
        );
        let _ = writeln!(r, "franzgate_admin_timeouts_total{{timeout=\"idle\"}} {}", load(&self.idle_timeouts));
        let _ = writeln!(r, "franzgate_admin_timeouts_total{{timeout=\"request\"}} {}", load(&self.request_timeouts));
        counter(
            r,
            "franzgate_log_lines_suppressed_total",
            "Repetitive warning lines a peer could trigger at will, held back by the per-call-site rate limit.",
            crate::log_limit::suppressed_total(),
        );
    }
}

/// A count and a latency histogram.
#[derive(Debug, Default)]
struct ApiCounters {
    requests: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    sum_micros: AtomicU64,
}

impl ApiCounters {
    fn observe(&self, elapsed: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Writes the histogram as `{name}_bucket{label,le}`, `_sum`, `_count`.
    fn render(&self, r: &mut String, name: &str, label: &str) {
        let count = self.requests.load(Ordering::Relaxed);
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(r, "{name}_bucket{{{label},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(r, "{name}_bucket{{{label},le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(r, "{name}_sum{{{label}}} {sum}\n{name}_count{{{label}}} {count}");
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self {
            client_connections_open: AtomicI64::new(0),
            upstream_connections_opened: AtomicU64::new(0),
            upstream_connections_open: AtomicI64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            refused_max_connections: AtomicU64::new(0),
            refused_max_connections_per_ip: AtomicU64::new(0),
            refused_admin_body: AtomicU64::new(0),
            backend_request_timeouts: AtomicU64::new(0),
            refused_oversized_frames: AtomicU64::new(0),
            in_flight_limit_reached: AtomicU64::new(0),
            state_records_rejected: AtomicU64::new(0),
            memory: franzgate_api::budget::GatewayBudget::unlimited(),
            admin: AdminConnectionMetrics::default(),
            sessions_closed_idle: AtomicU64::new(0),
            per_api: (0..API_SLOTS).map(|_| ApiCounters::default()).collect(),
            per_filter: Vec::new(),
            count_error_codes: false,
            errors: Mutex::default(),
        }
    }
}

/// What `/metrics` reads besides [`GatewayMetrics`].
pub struct Sources<'a> {
    /// The active cluster and switch history.
    pub selector: &'a ClusterSelector,
    /// Authentication outcomes.
    pub auth: &'a AuthStats,
    /// Chargeback counts.
    pub usage: &'a UsageLedger,
    /// Client connections accepted per gateway port.
    pub accepted: BTreeMap<u16, u64>,
    /// The fleet's switch decision and history, with a failover configured.
    pub fleet: Option<&'a crate::fleet::Fleet>,
}

// === impl GatewayMetrics ===

impl GatewayMetrics {
    /// The memory budgets: bytes buffered now and at most, the limit, and the reads that waited for each budget.
    fn render_memory(&self, r: &mut String) {
        use franzgate_api::budget::Limit;
        let memory = &self.memory;
        header(r, "franzgate_buffered_bytes", "gauge", "Request and response bytes buffered now, by direction.");
        let responses = memory.buffered_responses();
        let requests = memory.buffered().saturating_sub(responses);
        let _ = writeln!(r, "franzgate_buffered_bytes{{direction=\"request\"}} {requests}");
        let _ = writeln!(r, "franzgate_buffered_bytes{{direction=\"response\"}} {responses}");
        gauge(r, "franzgate_buffered_bytes_peak", "The most bytes ever buffered at once.", memory.peak() as i64);
        let limit = i64::try_from(memory.limit()).unwrap_or(i64::MAX);
        gauge(r, "franzgate_memory_budget_bytes", "gateway.memory_budget_bytes.", limit);
        header(
            r,
            "franzgate_memory_budget_waits_total",
            "counter",
            "Reads (of a client request or a backend response) that waited for a memory budget, by budget.",
        );
        let (own, all) = (memory.waits(Limit::Session), memory.waits(Limit::Gateway));
        let _ = writeln!(r, "franzgate_memory_budget_waits_total{{budget=\"session_buffer_bytes\"}} {own}");
        let _ = writeln!(r, "franzgate_memory_budget_waits_total{{budget=\"memory_budget_bytes\"}} {all}");
    }

    /// Metrics timing the filters `names` (outermost first) too.
    pub fn with_filters<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let per_filter = names.into_iter().map(|n| (n.to_string(), ApiCounters::default())).collect();
        Self { per_filter, ..Self::default() }
    }

    /// Filter `index` answered after `elapsed` (its own time plus the filters inside it).
    pub fn filter_done(&self, index: usize, elapsed: Duration) {
        if let Some((_, counters)) = self.per_filter.get(index) {
            counters.observe(elapsed);
        }
    }

    /// Counts the error codes in a response about to be written (when enabled). Decodes the body, keeping the
    /// received bytes for writing.
    pub fn count_errors(&self, response: &mut franzgate_api::KafkaResponse) {
        if !self.count_error_codes {
            return;
        }
        let api = response.api_key_raw();
        let mut found: Vec<i16> = Vec::new();
        if let Ok(body) = response.body() {
            error_codes(body, |code| {
                if code != 0 {
                    found.push(code);
                }
            });
        }
        if found.is_empty() {
            return;
        }
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        for code in found {
            *errors.entry((api, code)).or_default() += 1;
        }
    }

    fn slot(&self, api_key: i16) -> Option<&ApiCounters> {
        let index = usize::try_from(api_key).ok()?.min(API_SLOTS - 1);
        self.per_api.get(index)
    }

    /// A request of `bytes` bytes arrived.
    pub fn request_started(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was answered (or dropped) after `elapsed`.
    pub fn request_done(&self, api_key: i16, elapsed: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(slot) = self.slot(api_key) {
            slot.observe(elapsed);
        }
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self, sources: &Sources<'_>) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let r = &mut out;
        header(
            r,
            "franzgate_client_connections_accepted_total",
            "counter",
            "Client connections accepted, per gateway port.",
        );
        for (port, count) in &sources.accepted {
            let _ = writeln!(r, "franzgate_client_connections_accepted_total{{port=\"{port}\"}} {count}");
        }
        gauge(
            r,
            "franzgate_client_connections_open",
            "Client connections open.",
            self.client_connections_open.load(Ordering::Relaxed),
        );
        counter(
            r,
            "franzgate_upstream_connections_opened_total",
            "Backend connections opened.",
            self.upstream_connections_opened.load(Ordering::Relaxed),
        );
        gauge(
            r,
            "franzgate_upstream_connections_open",
            "Backend connections open.",
            self.upstream_connections_open.load(Ordering::Relaxed),
        );
        counter(
            r,
            "franzgate_client_bytes_received_total",
            "Request bytes received from clients.",
            self.bytes_in.load(Ordering::Relaxed),
        );
        counter(
            r,
            "franzgate_client_bytes_sent_total",
            "Response bytes sent to clients.",
            self.bytes_out.load(Ordering::Relaxed),
        );
        gauge(r, "franzgate_requests_in_flight", "Requests being served.", self.in_flight.load(Ordering::Relaxed));
        header(
            r,
            "franzgate_connections_refused_total",
            "counter",
            "Client connections closed at once, by the limit reached.",
        );
        let total = self.refused_max_connections.load(Ordering::Relaxed);
        let per_ip = self.refused_max_connections_per_ip.load(Ordering::Relaxed);
        let _ = writeln!(r, "franzgate_connections_refused_total{{limit=\"max_connections\"}} {total}");
        let _ = writeln!(r, "franzgate_connections_refused_total{{limit=\"max_connections_per_ip\"}} {per_ip}");
        header(r, "franzgate_limit_reached_total", "counter", "Per-session limits reached, by limit.");
        let frames = self.refused_oversized_frames.load(Ordering::Relaxed);
        let in_flight = self.in_flight_limit_reached.load(Ordering::Relaxed);
        let _ = writeln!(r, "franzgate_limit_reached_total{{limit=\"max_frame_bytes\"}} {frames}");
        let _ = writeln!(r, "franzgate_limit_reached_total{{limit=\"max_in_flight_per_session\"}} {in_flight}");
        self.render_memory(r);
        render_undecodable(r);
        counter(
            r,
            "franzgate_backend_request_timeouts_total",
            "Backend requests not answered within request_timeout_ms; each gave up its backend connection.",
            self.backend_request_timeouts.load(Ordering::Relaxed),
        );
        counter(
            r,
            "franzgate_admin_requests_refused_total",
            "Admin API requests refused with 413 for admin_max_body_bytes.",
            self.refused_admin_body.load(Ordering::Relaxed),
        );
        counter(
            r,
            "franzgate_state_records_rejected_total",
            "State-topic records ignored for lacking a valid signature: not written by this gateway fleet.",
            self.state_records_rejected.load(Ordering::Relaxed),
        );
        counter(
            r,
            "franzgate_sessions_closed_idle_total",
            "Client connections closed for idle_timeout_ms.",
            self.sessions_closed_idle.load(Ordering::Relaxed),
        );
        self.admin.render(r);
        self.render_requests(r);
        header(
            r,
            "franzgate_response_errors_total",
            "counter",
            "Kafka error codes in responses (per partition where the api has them), per api and code; with gateway.error_code_metrics.",
        );
        for ((api, code), count) in self.errors.lock().map(|e| e.clone()).unwrap_or_default() {
            let name = franzgate_api::kafka_protocol::ResponseError::try_from_code(code)
                .map_or_else(|| code.to_string(), |e| format!("{e:?}"));
            let api = usize::try_from(api).map(api_name).unwrap_or_else(|_| api.to_string());
            let _ = writeln!(r, "franzgate_response_errors_total{{api=\"{api}\",code=\"{name}\"}} {count}");
        }
        let (successes, failures) = sources.auth.counts();
        header(r, "franzgate_authentications_total", "counter", "Client authentications, by result.");
        let _ = writeln!(r, "franzgate_authentications_total{{result=\"success\"}} {successes}");
        let _ = writeln!(r, "franzgate_authentications_total{{result=\"failure\"}} {failures}");
        counter(
            r,
            "franzgate_authentication_failures_limited_total",
            "Failed logins refused unchecked by authentication.max_failures_per_ip_per_minute.",
            sources.auth.limited(),
        );
        let active = sources.selector.active();
        header(r, "franzgate_active_cluster", "gauge", "1 for the backend cluster new sessions use, else 0.");
        for cluster in sources.selector.clusters() {
            let on = u8::from(cluster.name == active.cluster.name);
            let _ = writeln!(r, "franzgate_active_cluster{{cluster=\"{}\"}} {on}", escape(&cluster.name));
        }
        counter(r, "franzgate_cluster_switches_total", "Cluster switches since start.", active.switch_count);
        counter(
            r,
            "franzgate_offset_commits_fenced_total",
            "Offset commits refused (UNKNOWN_MEMBER_ID) because they carried another cluster's positions.",
            sources.selector.fenced_commits(),
        );
        counter(
            r,
            "franzgate_produce_fenced_total",
            "Produce requests refused (NOT_LEADER_OR_FOLLOWER) by a planned switch's fence.",
            sources.selector.fenced_produces(),
        );
        if let Some(fleet) = sources.fleet {
            render_fleet(r, fleet);
        }
        let producers = &sources.selector.producers;
        for (name, help, value) in [
            (
                "franzgate_producer_stand_ins_total",
                "Producer ids the gateway obtained on a cluster for idempotent producers that crossed a switch.",
                &producers.stand_ins,
            ),
            (
                "franzgate_producer_stand_in_failures_total",
                "Stand-in producer ids that could not be obtained (the Produce got a retriable error).",
                &producers.stand_in_failures,
            ),
            (
                "franzgate_producer_batches_rewritten_total",
                "Record batches forwarded under the stand-in producer id of a producer that crossed a switch.",
                &producers.rewritten_batches,
            ),
            (
                "franzgate_producer_ids_renamed_total",
                "Producer ids given to clients in place of an id a live producer of another cluster holds.",
                &producers.renamed_ids,
            ),
            (
                "franzgate_transaction_requests_refused_total",
                "Requests of a transaction open at a switch (its producer id another cluster's), refused with an abortable error.",
                &producers.refused_transactional,
            ),
            (
                "franzgate_transactions_aborted_by_gateway_total",
                "EndTxn(abort) of a transaction open at a switch, answered by the gateway (nothing of it is on this cluster).",
                &producers.aborted_here,
            ),
        ] {
            counter(r, name, help, franzgate_api::selector::ProducerStats::get(value));
        }
        let since = active.since.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        header(
            r,
            "franzgate_active_cluster_since_timestamp_seconds",
            "gauge",
            "When the active cluster became active (start-up or the last switch).",
        );
        let _ = writeln!(r, "franzgate_active_cluster_since_timestamp_seconds {since}");
        render_usage(r, sources.usage);
        out
    }

    fn render_requests(&self, r: &mut String) {
        header(r, "franzgate_requests_total", "counter", "Requests answered, per api.");
        for (key, slot) in self.per_api.iter().enumerate() {
            let count = slot.requests.load(Ordering::Relaxed);
            if count > 0 {
                let _ = writeln!(r, "franzgate_requests_total{{api=\"{}\"}} {count}", api_name(key));
            }
        }
        header(
            r,
            "franzgate_request_duration_seconds",
            "histogram",
            "Time from reading a request to its response being ready, per api.",
        );
        for (key, slot) in self.per_api.iter().enumerate() {
            let count = slot.requests.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            slot.render(r, "franzgate_request_duration_seconds", &format!("api=\"{}\"", api_name(key)));
        }
        if !self.per_filter.is_empty() {
            header(
                r,
                "franzgate_filter_duration_seconds",
                "histogram",
                "Time from a filter's call to its response, the filters inside it included (label: position-name).",
            );
            for (index, (name, counters)) in self.per_filter.iter().enumerate() {
                counters.render(
                    r,
                    "franzgate_filter_duration_seconds",
                    &format!("filter=\"{index}-{}\"", escape(name)),
                );
            }
        }
    }
}

/// The fleet: the decision's epoch, and the last switch per mode (its duration, the fence, the replication wait).
fn render_fleet(r: &mut String, fleet: &crate::fleet::Fleet) {
    use std::fmt::Write;
    let epoch = fleet.applied().map_or(0, |a| a.epoch);
    header(r, "franzgate_fleet_epoch", "gauge", "The epoch of the fleet's switch decision this instance applied.");
    let _ = writeln!(r, "franzgate_fleet_epoch {epoch}");
    let history = fleet.history();
    header(r, "franzgate_switch_attempts", "gauge", "Switch attempts in the fleet's history, by mode and HTTP status.");
    let mut counts: BTreeMap<(String, u16), u64> = BTreeMap::new();
    for attempt in &history {
        *counts.entry((attempt.mode.clone(), attempt.status)).or_default() += 1;
    }
    for ((mode, status), count) in counts {
        let _ = writeln!(r, "franzgate_switch_attempts{{mode=\"{}\",status=\"{status}\"}} {count}", escape(&mode));
    }
    let last_switch = |mode: &str| history.iter().find(|a| a.mode == mode && a.status == 200 && !a.dry_run);
    header(
        r,
        "franzgate_last_switch_duration_seconds",
        "gauge",
        "How long the fleet's last switch call took, by mode.",
    );
    header(r, "franzgate_last_switch_fenced_seconds", "gauge", "How long the last planned switch fenced Produce.");
    header(
        r,
        "franzgate_last_switch_replication_wait_seconds",
        "gauge",
        "How long the last planned switch waited for replication.",
    );
    for mode in ["unplanned", "planned"] {
        let Some(attempt) = last_switch(mode) else { continue };
        let seconds = |ms: u64| ms as f64 / 1000.0;
        let _ =
            writeln!(r, "franzgate_last_switch_duration_seconds{{mode=\"{mode}\"}} {}", seconds(attempt.duration_ms));
        if let (Some(fenced), Some(wait)) = (attempt.fenced_ms, attempt.replication_wait_ms) {
            let _ = writeln!(r, "franzgate_last_switch_fenced_seconds {}", seconds(fenced));
            let _ = writeln!(r, "franzgate_last_switch_replication_wait_seconds {}", seconds(wait));
        }
    }
}

fn render_usage(r: &mut String, usage: &UsageLedger) {
    let snapshot = usage.snapshot();
    type Field = fn(&franzgate_api::usage::Usage) -> u64;
    let series: [(&str, &str, Field); 8] = [
        ("franzgate_chargeback_produced_bytes_total", "Record-batch bytes produced.", |u| u.produced_bytes),
        ("franzgate_chargeback_produced_batches_total", "Record batches produced.", |u| u.produced_batches),
        ("franzgate_chargeback_produced_records_total", "Records produced.", |u| u.produced_records),
        ("franzgate_chargeback_produce_requests_total", "Produce requests carrying the topic.", |u| u.produce_requests),
        ("franzgate_chargeback_consumed_bytes_total", "Record-batch bytes consumed.", |u| u.consumed_bytes),
        ("franzgate_chargeback_consumed_batches_total", "Record batches consumed.", |u| u.consumed_batches),
        ("franzgate_chargeback_consumed_records_total", "Records consumed.", |u| u.consumed_records),
        ("franzgate_chargeback_fetch_responses_total", "Fetch responses carrying records of the topic.", |u| {
            u.fetch_responses
        }),
    ];
    for (name, help, field) in series {
        header(r, name, "counter", help);
        for (key, usage) in &snapshot.totals {
            let _ = writeln!(
                r,
                "{name}{{cluster=\"{}\",vcluster=\"{}\",principal=\"{}\",client_id=\"{}\",topic=\"{}\"}} {}",
                escape(&key.cluster),
                escape(&key.vcluster),
                escape(&key.principal),
                escape(&key.client_id),
                escape(&key.topic),
                field(usage)
            );
        }
    }
    header(
        r,
        "franzgate_chargeback_folded_labels",
        "gauge",
        "Distinct label values counted under `other` (cardinality limit).",
    );
    let _ = writeln!(r, "franzgate_chargeback_folded_labels{{label=\"topic\"}} {}", snapshot.folded_topics);
    let _ = writeln!(r, "franzgate_chargeback_folded_labels{{label=\"client_id\"}} {}", snapshot.folded_client_ids);
}

fn header(r: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(r, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(r: &mut String, name: &str, help: &str, value: u64) {
    header(r, name, "counter", help);
    let _ = writeln!(r, "{name} {value}");
}

fn gauge(r: &mut String, name: &str, help: &str, value: i64) {
    header(r, name, "gauge", help);
    let _ = writeln!(r, "{name} {value}");
}

fn api_name(slot: usize) -> String {
    match i16::try_from(slot).ok().and_then(|k| ApiKey::try_from(k).ok()) {
        Some(key) => format!("{key:?}"),
        None => format!("unknown_{slot}"),
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `franzgate_undecodable_messages_total{direction,api,version}`: messages a filter asked to decode that did not.
fn render_undecodable(r: &mut String) {
    header(
        r,
        "franzgate_undecodable_messages_total",
        "counter",
        "Messages that did not decode when a filter asked for them, by direction, api and version; forwarded unchanged unless a filter had to rewrite them.",
    );
    for ((direction, key, version), count) in franzgate_api::undecodable::counts() {
        let api = ApiKey::try_from(key).map_or_else(|_| key.to_string(), |k| format!("{k:?}"));
        let direction = direction.name();
        let _ = writeln!(
            r,
            "franzgate_undecodable_messages_total{{direction=\"{direction}\",api=\"{api}\",version=\"{version}\"}} {count}"
        );
    }
}
