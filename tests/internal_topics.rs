//! The gateway's own state topic, end to end against Apache Kafka: no client principal reaches it through the
//! gateway (issue 16, item 3), and a record written to it directly on the backend — by anyone with backend
//! credentials — is ignored, because it does not carry the fleet's signature.
//!
//! The tests share the binary's Kafka cluster; each gateway keeps its state in a topic of its own and names
//! its tenants uniquely.

mod common;

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{TestGateway, client_config, read_all, read_frame, shared_cluster, unique};
use franzgate::admin::client::{call_text, call_with_body};
use franzgate_api::vcluster::StateRecord;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SECRET: &str = "the-user-pool-secret";
const ADMIN: (&str, &str) = ("admin", "admin-secret");
/// A configured SASL user with no virtual cluster: a passthrough principal, not an admin.
const ALICE: (&str, &str) = ("alice", "alice-secret");
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

/// A SASL_PLAINTEXT gateway with a passthrough user, tokens for tenants and its state in `state_topic`
/// (re-read every 300 ms); `extra` are further `virtual_clusters` keys.
async fn gateway(bootstrap: &str, state_topic: &str, extra: &str) -> TestGateway {
    let users = common::secure::user_entry(ALICE.0, &common::secure::hashed_credentials(ALICE.1));
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    token_secret: {SECRET}\n    users: [{users}]\n  \
         admin_users: [{{username: {}, password: {}, admin: true}}]\n  \
         virtual_clusters: {{refresh_interval_ms: 300, state_topic: {state_topic}{extra}}}\n",
        ADMIN.0, ADMIN.1
    );
    let yaml = common::secure::gateway_yaml(&keys, &format!("  main:\n    bootstrap.servers: {bootstrap}\n"), "");
    TestGateway::from_yaml(&yaml).await
}

async fn admin(gateway: &TestGateway, method: &str, path: &str, body: &str) -> (u16, Value) {
    call_with_body(&gateway.admin(), method, path, Some(ADMIN), body.to_string()).await.expect("admin API")
}

/// A token for `user` of `vcluster` (created with the prefix `vcluster` + "."), from the admin API.
async fn tenant_token(gateway: &TestGateway, vcluster: &str, user: &str) -> String {
    let body = format!(r#"{{"prefix": "{vcluster}."}}"#);
    let (status, answer) = admin(gateway, "POST", &format!("/admin/vclusters/v1/vcluster/{vcluster}"), &body).await;
    assert_eq!(status, 201, "{answer}");
    let path = format!("/admin/vclusters/v1/vcluster/{vcluster}/username/{user}");
    let (status, answer) = admin(gateway, "POST", &path, r#"{"lifeTimeSeconds": 3600}"#).await;
    assert_eq!(status, 200, "{answer}");
    answer["token"].as_str().expect("token in the answer").to_string()
}

fn sasl_client(gateway: &TestGateway, (user, password): (&str, &str)) -> ClientConfig {
    common::tenant_config(&gateway.bootstrap(), user, password)
}

/// Logs in and asks for metadata, retrying for up to 15 s: true if that worked.
fn can_connect(config: &ClientConfig) -> bool {
    let client: BaseConsumer = config.create().expect("client");
    client.fetch_metadata(None, Duration::from_secs(15)).is_ok()
}

fn rejected_records(metrics: &str) -> u64 {
    let line = metrics.lines().find(|l| l.starts_with("franzgate_state_records_rejected_total "));
    line.and_then(|l| l.rsplit(' ').next()).and_then(|n| n.parse().ok()).expect("the metric is exported")
}

async fn metrics(gateway: &TestGateway) -> String {
    call_text(&gateway.admin(), "/metrics", ADMIN).await.expect("metrics")
}

/// The record a revocation of `user` of `vcluster` is, exactly as the gateway writes it (key and JSON value).
fn revocation(vcluster: &str, user: &str) -> (String, Vec<u8>) {
    let record =
        StateRecord::ServiceAccount { vcluster: vcluster.into(), username: user.into(), generation: 1, revoked: true };
    (record.key(), serde_json::to_vec(&record).expect("json"))
}

// === a raw Kafka client, for requests librdkafka would not send once metadata is refused ===

/// One request on `stream`, its response decoded.
async fn call<Req: Encodable, Resp: Decodable>(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
    request: &Req,
) -> Resp {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(9)
        .with_client_id(Some(StrBytes::from_static_str("raw")));
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header.encode(&mut frame, key.request_header_version(version)).expect("header");
    request.encode(&mut frame, version).expect("body");
    let len = i32::try_from(frame.len() - 4).expect("small");
    frame[..4].copy_from_slice(&len.to_be_bytes());
    stream.write_all(&frame).await.expect("write");
    let mut response = Bytes::from(read_frame(stream).await.expect("a response"));
    ResponseHeader::decode(&mut response, key.response_header_version(version)).expect("response header");
    let decoded = Resp::decode(&mut response, version).expect("response body");
    assert_eq!(response.remaining(), 0, "the whole response decoded");
    decoded
}

/// A connection to the gateway, logged in as `user` with SASL PLAIN.
async fn logged_in(gateway: &TestGateway, (user, password): (&str, &str)) -> TcpStream {
    let mut stream = TcpStream::connect(gateway.bootstrap()).await.expect("connect");
    let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    let answer: SaslHandshakeResponse = call(&mut stream, ApiKey::SaslHandshake, 1, &handshake).await;
    assert_eq!(answer.error_code, 0);
    let auth = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(format!("\0{user}\0{password}")));
    let answer: SaslAuthenticateResponse = call(&mut stream, ApiKey::SaslAuthenticate, 2, &auth).await;
    assert_eq!(answer.error_code, 0, "{user} logged in");
    stream
}

/// The topic as the backend describes it to a client connected directly (its id included).
async fn backend_metadata(bootstrap: &str, topic: &str) -> MetadataResponse {
    let mut stream = TcpStream::connect(bootstrap).await.expect("connect to the backend");
    let wanted = MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))));
    let request = MetadataRequest::default().with_topics(Some(vec![wanted]));
    call(&mut stream, ApiKey::Metadata, 12, &request).await
}

fn batch(key: &str, value: &[u8]) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 0,
        key: Some(Bytes::from(key.to_string())),
        value: Some(Bytes::copy_from_slice(value)),
        headers: Default::default(),
    };
    let mut batch = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut batch, [record].iter(), &options).expect("batch");
    batch.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passthrough_user_can_neither_write_read_nor_see_the_state_topic() {
    let broker = shared_cluster().await;
    let state = unique("_franzgate_state");
    let gateway = gateway(&broker.bootstrap(), &state, "").await;
    let shop = unique("shop");
    let token = tenant_token(&gateway, &shop, "sa").await;
    let before = read_all(&broker.bootstrap(), &state);
    assert!(before.len() >= 2, "the virtual cluster and its account are in the topic: {before:?}");

    // The attack of the issue: the revocation record, produced through the gateway by a passthrough user.
    let (key, value) = revocation(&shop, "sa");
    let mut alice = logged_in(&gateway, ALICE).await;
    let partition = PartitionProduceData::default().with_index(0).with_records(Some(batch(&key, &value)));
    let topic = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(state.clone())))
        .with_partition_data(vec![partition]);
    let produce = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![topic]);
    let answer: ProduceResponse = call(&mut alice, ApiKey::Produce, 7, &produce).await;
    let codes: Vec<_> = answer.responses.iter().flat_map(|t| &t.partition_responses).map(|p| p.error_code).collect();
    assert_eq!(codes, [TOPIC_AUTHORIZATION_FAILED]);

    // Nor can it read the topic.
    let partition = FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20);
    let topic = FetchTopic::default()
        .with_topic(TopicName(StrBytes::from_string(state.clone())))
        .with_partitions(vec![partition]);
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![topic]);
    let answer: FetchResponse = call(&mut alice, ApiKey::Fetch, 12, &fetch).await;
    let codes: Vec<_> = answer.responses.iter().flat_map(|t| &t.partitions).map(|p| p.error_code).collect();
    assert_eq!(codes, [TOPIC_AUTHORIZATION_FAILED]);
    assert!(
        answer.responses.iter().flat_map(|t| &t.partitions).all(|p| p.records.as_ref().is_none_or(|r| r.is_empty()))
    );

    // Nor by id (Fetch v13+), which the gateway looked up itself: no listing has shown it to anyone yet.
    let described = backend_metadata(&broker.bootstrap(), &state).await;
    let id = described.topics.first().map(|t| t.topic_id).expect("the state topic");
    assert!(!id.is_nil());
    let partition = FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20);
    let topic = FetchTopic::default().with_topic_id(id).with_partitions(vec![partition]);
    let fetch = fetch.with_topics(vec![topic]);
    let answer: FetchResponse = call(&mut alice, ApiKey::Fetch, 13, &fetch).await;
    let codes: Vec<_> = answer.responses.iter().flat_map(|t| &t.partitions).map(|p| p.error_code).collect();
    assert_eq!(codes, [TOPIC_AUTHORIZATION_FAILED], "by id");

    // librdkafka: the topic is not listed, asking for it is an authorization error, and producing to it fails.
    let client: BaseConsumer = sasl_client(&gateway, ALICE).create().expect("client");
    let listed = client.fetch_metadata(None, Duration::from_secs(15)).expect("metadata");
    assert!(!listed.topics().is_empty(), "the listing works and shows other topics");
    assert!(listed.topics().iter().all(|t| t.name() != state), "the state topic is not listed");
    let named = client.fetch_metadata(Some(&state), Duration::from_secs(15)).expect("metadata");
    let error = named.topics().first().and_then(|t| t.error());
    assert_eq!(error.map(RDKafkaErrorCode::from), Some(RDKafkaErrorCode::TopicAuthorizationFailed));
    let producer: FutureProducer =
        sasl_client(&gateway, ALICE).set("message.timeout.ms", "10000").create().expect("producer");
    let sent = producer.send(FutureRecord::to(&state).key(&key).payload(&value), Duration::from_secs(15)).await;
    let error = sent.expect_err("refused").0;
    assert!(
        matches!(error, KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed)),
        "refused as unauthorized: {error:?}"
    );

    // Nothing was written, and the tenant's token still works.
    assert_eq!(read_all(&broker.bootstrap(), &state), before, "the state topic is unchanged");
    assert!(can_connect(&common::tenant_config(&gateway.bootstrap(), "sa", &token)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_written_straight_to_the_backend_is_ignored_and_counted() {
    let broker = shared_cluster().await;
    let state = unique("_franzgate_state");
    let gateway = gateway(&broker.bootstrap(), &state, "").await;
    let shop = unique("shop");
    let token = tenant_token(&gateway, &shop, "sa").await;
    let tenant = common::tenant_config(&gateway.bootstrap(), "sa", &token);
    assert!(can_connect(&tenant));
    let rejected_before = rejected_records(&metrics(&gateway).await);

    // Someone with backend credentials writes the revocation directly: once unsigned, once with a made-up
    // signature, in the gateway's own record format.
    let (key, value) = revocation(&shop, "sa");
    let direct: FutureProducer = client_config(&broker.bootstrap()).set("acks", "all").create().expect("producer");
    let forged = OwnedHeaders::new().insert(Header { key: "franzgate-sig", value: Some("v1:AAAAAAAAAAAAAAAAAAAAAA") });
    for headers in [None, Some(forged)] {
        let mut record = FutureRecord::to(&state).key(&key).payload(&value);
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        direct.send(record, Duration::from_secs(15)).await.map_err(|(e, _)| e).expect("written to the backend");
    }

    // The gateway reads both at its next refresh, and counts them instead of applying them.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut rejected = rejected_records(&metrics(&gateway).await);
    while rejected < rejected_before + 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rejected = rejected_records(&metrics(&gateway).await);
    }
    assert_eq!(rejected, rejected_before + 2, "both forged records were read and rejected");
    assert!(can_connect(&tenant), "the tenant's token still works after the refresh");
    let (status, listed) = admin(&gateway, "GET", &format!("/admin/vclusters/v1/vcluster/{shop}"), "").await;
    assert_eq!(status, 200);
    assert_eq!(listed["serviceAccounts"][0]["revoked"], Value::Bool(false), "{listed}");

    // The gateway's own revocation, signed, still takes effect.
    let (status, body) =
        admin(&gateway, "DELETE", &format!("/admin/vclusters/v1/vcluster/{shop}/username/sa"), "").await;
    assert_eq!(status, 200, "{body}");
    let client: BaseConsumer = tenant.create().expect("client");
    assert!(client.fetch_metadata(None, Duration::from_secs(4)).is_err(), "revoked by the admin API");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_gateways_unsigned_state_is_applied_only_when_accepted_and_then_signed() {
    let broker = shared_cluster().await;
    let state = unique("_franzgate_state");
    let shop = unique("shop");
    // The topic as a franzgate from before signed records left it: a virtual cluster, unsigned.
    let legacy = StateRecord::VirtualCluster { name: shop.clone(), prefix: format!("{shop}.") };
    let value = serde_json::to_vec(&legacy).expect("json");
    let direct: FutureProducer = client_config(&broker.bootstrap()).set("acks", "all").create().expect("producer");
    let key = legacy.key();
    let record = FutureRecord::to(&state).key(&key).payload(&value);
    direct.send(record, Duration::from_secs(15)).await.map_err(|(e, _)| e).expect("written to the backend");
    let path = format!("/admin/vclusters/v1/vcluster/{shop}");

    let strict = gateway(&broker.bootstrap(), &state, "").await;
    assert_eq!(admin(&strict, "GET", &path, "").await.0, 404, "unsigned: not applied");
    assert!(rejected_records(&metrics(&strict).await) >= 1);
    drop(strict);

    // Accepted for one start: applied, and written back signed.
    let migrating = gateway(&broker.bootstrap(), &state, ", accept_unsigned_records: true").await;
    assert_eq!(admin(&migrating, "GET", &path, "").await.0, 200, "accepted");
    drop(migrating);
    let strict = gateway(&broker.bootstrap(), &state, "").await;
    let (status, listed) = admin(&strict, "GET", &path, "").await;
    assert_eq!(status, 200, "signed since: {listed}");
    assert_eq!(listed["prefix"], Value::from(format!("{shop}.")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_state_replicated_by_mirrormaker_into_a_renamed_topic_stays_valid() {
    let (main, failover) = tokio::join!(shared_cluster(), common::own_kafka("mm2-target"));
    let state = unique("_franzgate_state");
    let shop = unique("shop");
    let on_main = gateway(&main.bootstrap(), &state, "").await;
    tenant_token(&on_main, &shop, "sa").await;

    // MirrorMaker 2 with its default replication policy: the copy on the target is `main.<topic>`, its records
    // carrying key, value and headers as they were.
    let properties = format!(
        "clusters = main, failover\nmain.bootstrap.servers = {}\nfailover.bootstrap.servers = {}\n\
         main->failover.enabled = true\nmain->failover.topics = {state}\nrefresh.topics.interval.seconds = 1\n\
         main.consumer.auto.offset.reset = earliest\nemit.checkpoints.enabled = false\n\
         replication.factor = 1\ncheckpoints.topic.replication.factor = 1\nheartbeats.topic.replication.factor = 1\n\
         offset-syncs.topic.replication.factor = 1\noffset.storage.replication.factor = 1\n\
         status.storage.replication.factor = 1\nconfig.storage.replication.factor = 1\n",
        main.bootstrap(),
        failover.bootstrap()
    );
    let mirror = common::MirrorMaker::start(&properties);
    let copy = format!("main.{state}");
    let expected = read_all(&main.bootstrap(), &state).len();
    let deadline = Instant::now() + Duration::from_secs(120);
    while read_all(&failover.bootstrap(), &copy).len() < expected {
        assert!(Instant::now() < deadline, "MirrorMaker did not copy the state topic: {}", mirror.log_tail());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A gateway of the same fleet reading the renamed copy applies every record: none is rejected.
    let on_failover = gateway(&failover.bootstrap(), &copy, "").await;
    let (status, listed) = admin(&on_failover, "GET", &format!("/admin/vclusters/v1/vcluster/{shop}"), "").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["serviceAccounts"][0]["username"], Value::from("sa"), "{listed}");
    assert_eq!(rejected_records(&metrics(&on_failover).await), 0);
}

/// The filter chain a gateway with these `gateway:` keys runs, outermost first.
fn chain(gateway_keys: &str) -> Vec<String> {
    let yaml = format!(
        "gateway:\n  advertised_host: 127.0.0.1\n  port_start: 9092\n{gateway_keys}clusters:\n  main:\n    \
         bootstrap.servers: 127.0.0.1:9\n"
    );
    let config = franzgate::GatewayConfig::from_yaml(&yaml, "test.yaml").expect("valid config");
    let registry = franzgate::FilterRegistry::with_builtins();
    franzgate::Gateway::new(&config, &registry, "test.yaml").expect("gateway builds").chain_names()
}

#[test]
fn the_internal_topics_filter_guards_every_chain_with_a_state_or_flush_topic() {
    // Tenants: right inside the prefixing, so it sees backend names.
    let names = chain("  security_protocol: SASL_PLAINTEXT\n  authentication:\n    token_secret: s\n");
    let at = |name: &str| names.iter().position(|n| n == name);
    assert_eq!(at("internal-topics"), at("topic-prefix").map(|i| i + 1), "{names:?}");
    // No SASL, a chargeback flush topic: outermost.
    let names = chain("  chargeback:\n    flush_topic: usage\n");
    assert_eq!(names.first().map(String::as_str), Some("internal-topics"), "{names:?}");
    // No topic of its own: no filter.
    let names = chain("");
    assert!(!names.iter().any(|n| n == "internal-topics"), "{names:?}");
}
