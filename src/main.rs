//! The `franzgate` binary: run the gateway, or check a configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use franzgate::config::Env;
use franzgate::{FilterRegistry, Gateway, GatewayConfig};
use tracing_subscriber::EnvFilter;

/// A Kafka wire-protocol gateway. Clients connect to it as if it were the Kafka cluster; every request and
/// response passes through the filter chain declared in the YAML config.
///
/// Without --config, franzgate runs from environment variables alone, like Conduktor Gateway's container:
/// GATEWAY_ADVERTISED_HOST, GATEWAY_PORT_START (or GATEWAY_START_PORT), GATEWAY_PORT_COUNT, GATEWAY_BIND_HOST,
/// GATEWAY_HTTP_PORT, GATEWAY_ADMIN_API_USERS, GATEWAY_CLUSTER_ID, GATEWAY_SECURITY_PROTOCOL, GATEWAY_MODE,
/// GATEWAY_ROUTING_MECHANISM, GATEWAY_SSL_*, GATEWAY_FEATURE_FLAGS_* and GATEWAY_USER_POOL_SECRET_KEY (when unset
/// with SASL, a secret is generated and kept in the state topic), and the clusters from
/// GATEWAY_BACKEND_KAFKA_SELECTOR ('file : { path: /cluster-config.yaml}') or KAFKA_<ID>_<PROPERTY>
/// (KAFKA_MAIN_BOOTSTRAP_SERVERS, ...). With --config, the same variables override the file. Any other GATEWAY_*
/// variable is reported at start-up as unknown.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// The gateway config (YAML): `gateway:` listeners, `clusters:` backends, `filters:` chain.
    #[arg(long, short, value_name = "FILE", env = "FRANZGATE_CONFIG")]
    config: Option<PathBuf>,

    /// Log filter, e.g. `info` or `franzgate=debug` (also RUST_LOG).
    #[arg(long, default_value = "info", env = "RUST_LOG")]
    log: String,

    /// Log format: `text`, or `json` (one object per line, with the session's fields) for log pipelines.
    #[arg(long, default_value = "text", env = "GATEWAY_LOG_FORMAT", value_parser = ["text", "json"])]
    log_format: String,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a config and print the resolved listeners, clusters and filter chain, then exit.
    CheckConfig {
        /// The config file to check.
        file: PathBuf,
    },
    /// Print stored SCRAM credentials for a password read from stdin (one line), for the `credentials:` of a
    /// user in `gateway.authentication.users`. The password itself is never stored.
    HashPassword {
        /// PBKDF2 iterations (Kafka's minimum is 4096).
        #[arg(long, default_value_t = 8192)]
        iterations: u32,
    },
}

/// Keeps freed memory in the process. glibc otherwise hands large freed blocks back to the kernel, so nearly
/// every frame buffer was fresh memory the kernel had to fault in and zero: 26% of the gateway's CPU under
/// load, and 3.7x the CPU per GB moved (README, "Performance"). Set FRANZGATE_MALLOC_RETAIN=0 to keep glibc's
/// defaults, e.g. where a smaller peak RSS matters more than CPU.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn retain_freed_memory() {
    if std::env::var("FRANZGATE_MALLOC_RETAIN").is_ok_and(|v| v == "0") {
        return;
    }
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20); // glibc's maximum: frames up to 32 MiB come from the heap
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30); // give memory back only past 1 GiB of free heap
        libc::mallopt(libc::M_TOP_PAD, 64 << 20); // grow the heap in 64 MiB steps
        // One arena: malloc_trim returns the free top of the main heap only, so memory freed in a per-thread
        // arena stayed resident after a load had passed (52 MiB over idle, seen in tests/memory_budget.rs).
        // tcache keeps small allocations lock-free per thread; frames take the lock once each.
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn retain_freed_memory() {}

/// Hands the allocator's free pages back to the kernel, once a load has passed (`memory::return_memory_after_load`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_freed_memory() {
    // SAFETY: malloc_trim only returns free heap pages to the kernel, under the allocator's own locks.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released, "returned freed memory to the system after a load");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_memory() {}

/// Raises the open-file soft limit to the hard limit, and warns when even that is short of what
/// `max_connections` needs. Each client connection holds two descriptors (it and its backend connection); with the
/// common soft default of 1,024, a thousand idle connections exhausted the process and new clients, and
/// `/health`, could no longer be accepted.
#[cfg(unix)]
fn raise_open_file_limit(max_connections: usize, admin_max_connections: usize) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open-file limit");
        return;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit reads only the struct it is given; raising the soft limit up to the hard one is allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(from = limit.rlim_cur, to = raised.rlim_cur, "raised the open-file limit to its hard limit");
            limit = raised;
        } else {
            let error = std::io::Error::last_os_error();
            tracing::warn!(%error, soft = limit.rlim_cur, hard = limit.rlim_max, "cannot raise the open-file limit");
        }
    }
    // Two per client connection, one per admin connection, plus listeners and the gateway's own backend probes.
    let needed =
        (max_connections as u64).saturating_mul(2).saturating_add(admin_max_connections as u64).saturating_add(256);
    if max_connections > 0 && limit.rlim_cur < needed {
        tracing::warn!(
            open_files = limit.rlim_cur,
            needed,
            max_connections,
            "the open-file limit is below what gateway.max_connections needs (two per connection): raise the hard \
             limit (ulimit -Hn, LimitNOFILE=) or lower GATEWAY_MAX_CONNECTIONS"
        );
    }
}

#[cfg(not(unix))]
fn raise_open_file_limit(_max_connections: usize, _admin_max_connections: usize) {}

fn main() -> ExitCode {
    retain_freed_memory();
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt().with_env_filter(EnvFilter::new(&cli.log));
    if cli.log_format == "json" {
        // Targets stay in JSON: `franzgate::audit` marks the audit lines.
        logs.json().with_current_span(true).with_span_list(false).init();
    } else {
        logs.with_target(false).init();
    }
    match cli.command {
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::HashPassword { iterations }) => hash_password(iterations),
        None => run(cli.config),
    }
}

fn load(path: Option<&PathBuf>) -> Result<(GatewayConfig, Gateway), String> {
    let (config, source) =
        GatewayConfig::load(path.map(PathBuf::as_path), &Env::from_process()).map_err(|e| e.to_string())?;
    let gateway = Gateway::new(&config, &FilterRegistry::with_builtins(), &source).map_err(|e| e.to_string())?;
    Ok((config, gateway))
}

fn check_config(file: &PathBuf) -> ExitCode {
    match load(Some(file)) {
        Ok((config, gateway)) => {
            let g = &config.gateway;
            println!("{}: OK", file.display());
            println!(
                "listeners: bind {}:{}..{} advertised as {}",
                g.bind_host,
                g.port_start,
                u32::from(g.port_start) + u32::from(g.port_count) - 1,
                g.advertised_host
            );
            println!("admin API: {}:{}", g.bind_host, g.http_port);
            println!(
                "clients: {} with {:?} routing{}",
                g.security_protocol.name(),
                g.routing,
                g.tls.as_ref().map(|t| format!(", TLS client certificates {:?}", t.client_auth)).unwrap_or_default()
            );
            for built in config.built_clusters("").unwrap_or_default() {
                let cluster = &built.cluster;
                let servers: Vec<_> = cluster.bootstrap_servers.iter().map(ToString::to_string).collect();
                println!(
                    "cluster {} ({:?}): bootstrap {} as {:?}",
                    cluster.name,
                    cluster.role,
                    servers.join(","),
                    built.security
                );
            }
            println!("filter chain (outermost first): {}", gateway.chain_names().join(" -> "));
            if config.generates_token_secret() {
                println!(
                    "service-account tokens: no GATEWAY_USER_POOL_SECRET_KEY; a secret is generated at start-up and \
                     kept in state topic {}",
                    g.virtual_clusters.state_topic
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password(iterations: u32) -> ExitCode {
    use franzgate_auth::scram::{MIN_ITERATIONS, ScramCredential, ScramMechanism};
    if iterations < MIN_ITERATIONS {
        eprintln!("error: --iterations must be at least {MIN_ITERATIONS} (Kafka clients refuse fewer)");
        return ExitCode::FAILURE;
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("error: cannot read the password from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        eprintln!("error: empty password (give it on stdin, e.g. `echo -n secret | franzgate hash-password`)");
        return ExitCode::FAILURE;
    }
    for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
        match ScramCredential::generate(mechanism, password, iterations) {
            Ok(credential) => println!("{credential}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn run(config: Option<PathBuf>) -> ExitCode {
    let (config, gateway) = match load(config.as_ref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    raise_open_file_limit(config.gateway.max_connections, config.gateway.admin_max_connections);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let running = match gateway.start().await {
            Ok(running) => running,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let ports: Vec<_> = running.ports().into_iter().collect();
        tracing::info!(?ports, advertised = %running.advertised().host, "franzgate listening");
        tokio::spawn(franzgate::memory::return_memory_after_load(
            running.memory_budget().clone(),
            std::time::Duration::from_secs(5),
            (64 << 20).min(running.memory_budget().limit() / 4),
            return_freed_memory,
            tokio_util::sync::CancellationToken::new(),
        ));
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let stop = async {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => tokio::select! { _ = stop => {}, _ = term.recv() => {} },
                Err(_) => stop.await,
            }
        };
        stop.await;
        tracing::info!("signal received: shutting down gracefully");
        running.shutdown_gracefully().await;
        ExitCode::SUCCESS
    })
}
