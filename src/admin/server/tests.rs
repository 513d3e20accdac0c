use super::*;

fn limits(header_ms: u64, idle_ms: u64) -> AdminLimits {
    AdminLimits {
        max_connections: 4,
        header_read_timeout: Duration::from_millis(header_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        request_timeout: Duration::from_secs(60),
    }
}

#[test]
fn eviction_takes_the_oldest_idle_connection_and_skips_busy_ones() {
    let connections = Connections::default();
    let oldest = connections.insert();
    let middle = connections.insert();
    let youngest = connections.insert();
    let _busy = Busy::begin(oldest.clone());
    assert!(connections.evict_oldest_idle());
    assert!(!oldest.evict.is_cancelled(), "a connection handling a request is never evicted");
    assert!(middle.evict.is_cancelled(), "the oldest idle one goes first");
    assert!(!youngest.evict.is_cancelled());
    assert_eq!(connections.len(), 2, "its place is free at once");
    assert!(connections.evict_oldest_idle());
    assert!(youngest.evict.is_cancelled());
    assert!(!connections.evict_oldest_idle(), "only busy connections left: nothing to evict");
}

// Real time with short timeouts (the crate's tokio has no test-util); only lower bounds are asserted, and the
// timeout kind tells the header-read timeout from the idle one.

#[tokio::test]
async fn a_connection_that_never_sends_a_request_times_out_after_the_header_read_timeout() {
    let connection = Connection::new(0);
    let started = Instant::now();
    assert_eq!(connection.watchdog(&limits(100, 60_000)).await, Timeout::HeaderRead);
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn a_kept_alive_connection_may_wait_the_idle_timeout_between_requests() {
    let connection = Arc::new(Connection::new(0));
    drop(Busy::begin(connection.clone()));
    let idle_from = Instant::now();
    // The header-read timeout is shorter, but no byte of a next request has arrived.
    assert_eq!(connection.watchdog(&limits(50, 300)).await, Timeout::Idle);
    assert!(idle_from.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn the_first_byte_of_the_next_request_starts_the_header_read_clock() {
    let connection = Arc::new(Connection::new(0));
    drop(Busy::begin(connection.clone()));
    let limits = limits(100, 60_000);
    let watchdog = connection.watchdog(&limits);
    tokio::pin!(watchdog);
    tokio::select! {
        _ = &mut watchdog => panic!("timed out without a byte and long before the idle timeout"),
        _ = tokio::time::sleep(Duration::from_millis(150)) => connection.bytes_arrived(),
    }
    let byte_at = Instant::now();
    assert_eq!(watchdog.await, Timeout::HeaderRead, "a started header must complete in time");
    assert!(byte_at.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn a_busy_connection_does_not_time_out() {
    let connection = Arc::new(Connection::new(0));
    let busy = Busy::begin(connection.clone());
    let limits = limits(50, 100);
    tokio::select! {
        _ = connection.watchdog(&limits) => panic!("timed out while handling a request"),
        _ = tokio::time::sleep(Duration::from_millis(400)) => {}
    }
    drop(busy);
    assert_eq!(connection.watchdog(&limits).await, Timeout::Idle);
}

#[test]
fn the_descriptor_reserve_is_a_twentieth_of_the_limit_and_at_least_64() {
    assert_eq!(reserve_for(1_024), 64);
    assert_eq!(reserve_for(100_000), 5_000);
}

#[test]
fn short_of_descriptors_when_fewer_than_the_reserve_are_free() {
    let Some(open) = open_descriptors() else { return }; // no /proc here
    let roomy = FileDescriptors { limit: Some(open + 1_000), reserve: 64, counted: Mutex::new(None) };
    assert!(!roomy.short());
    let tight = FileDescriptors { limit: Some(open + 10), reserve: 64, counted: Mutex::new(None) };
    assert!(tight.short());
}
