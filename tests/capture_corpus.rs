//! Seeds the fuzz corpora with real client traffic (not a test: `cargo test --test capture_corpus -- --ignored`).
//!
//! rdkafka clients (admin, producer, group consumer) talk to Apache Kafka through the gateway; between the
//! gateway and Kafka (whose node advertises the front's port, so every connection crosses it) a recording front
//! writes every request frame and every broker response body to `fuzz/corpus/<target>/` (the folders
//! `scripts/fuzz.sh` seeds from), in each target's input format. `FRANZGATE_CORPUS_DIR` writes elsewhere
//! (e.g. to look at a capture before replacing the committed seeds).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ClusterSpec, KafkaCluster, TestGateway, client_config, unique};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Where each corpus goes, and a counter for file names.
struct Corpus {
    root: PathBuf,
    written: Mutex<usize>,
}

impl Corpus {
    fn write(&self, target: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        let mut n = self.written.lock().expect("lock");
        *n += 1;
        std::fs::write(dir.join(format!("real-{:05}", *n)), bytes).expect("write seed");
    }
}

async fn read_frame(stream: &mut tokio::net::tcp::OwnedReadHalf) -> Option<Vec<u8>> {
    let len = stream.read_i32().await.ok()?;
    let mut frame = vec![0u8; usize::try_from(len).ok()?];
    stream.read_exact(&mut frame).await.ok()?;
    Some(frame)
}

/// Forwards `port` to `target`, recording requests (`frames`, `tenant_rewrite`) and, matched by correlation
/// id, responses (`responses`: api key, version, body without the correlation id).
async fn recording_front(port: u16, target: u16, corpus: Arc<Corpus>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else { continue };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let pending: Arc<Mutex<HashMap<i32, (i16, i16)>>> = Arc::default();
            let (corpus_up, pending_up) = (corpus.clone(), pending.clone());
            tokio::spawn(async move {
                while let Some(frame) = read_frame(&mut client_read).await {
                    if frame.len() >= 8 {
                        let key = i16::from_be_bytes([frame[0], frame[1]]);
                        let version = i16::from_be_bytes([frame[2], frame[3]]);
                        let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                        pending_up.lock().expect("lock").insert(correlation, (key, version));
                    }
                    let mut framed = (frame.len() as i32).to_be_bytes().to_vec();
                    framed.extend_from_slice(&frame);
                    corpus_up.write("frames", &framed);
                    corpus_up.write("tenant_rewrite", &frame);
                    if server_write.write_all(&framed).await.is_err() {
                        break;
                    }
                }
            });
            let corpus = corpus.clone();
            tokio::spawn(async move {
                while let Some(frame) = read_frame(&mut server_read).await {
                    if frame.len() >= 4 {
                        let correlation = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
                        if let Some((key, version)) = pending.lock().expect("lock").remove(&correlation) {
                            // Flexible response headers carry a tagged-field byte after the correlation id;
                            // ApiVersions never does. The seed is the body as the filters see it.
                            let flexible = key != 18 && frame.len() > 4 && frame[4] == 0;
                            let body = &frame[if flexible { 5 } else { 4 }..];
                            let mut seed = key.to_be_bytes().to_vec();
                            seed.extend_from_slice(&version.to_be_bytes());
                            seed.extend_from_slice(body);
                            corpus.write("responses", &seed);
                        }
                    }
                    let mut framed = (frame.len() as i32).to_be_bytes().to_vec();
                    framed.extend_from_slice(&frame);
                    if client_write.write_all(&framed).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes fuzz seeds; run by hand"]
async fn capture_real_client_traffic_into_the_fuzz_corpora() {
    let root = std::env::var_os("FRANZGATE_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus")));
    let corpus = Arc::new(Corpus { root, written: Mutex::new(0) });
    let front = common::free_port();
    // A cluster of its own: its node advertises the front.
    let broker = KafkaCluster::start_async(ClusterSpec::new("seeds", &[1]).advertising(1, front)).await;
    recording_front(front, broker.port(1), corpus.clone()).await;
    let gateway = TestGateway::start(&format!("127.0.0.1:{front}"), "").await;
    let config = client_config(&gateway.bootstrap());
    let topic = unique("seeds");
    common::create_topic_with(config.clone(), &topic, 1).await;
    let producer: FutureProducer = config.clone().set("acks", "all").create().expect("producer");
    for i in 0..5 {
        let value = format!("seed-{i}");
        let record = FutureRecord::to(&topic).key("k").payload(&value).partition(0);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("sent");
    }
    let consumer: StreamConsumer = config
        .clone()
        .set("group.id", unique("seeders"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic.as_str()]).expect("subscribe");
    for i in 0..5 {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("record {i} consumed in time"))
            .expect("consumed");
        assert_eq!(rdkafka::Message::payload(&message), Some(format!("seed-{i}").as_bytes()));
    }
    consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync).expect("commit");
    let written = *corpus.written.lock().expect("lock");
    assert!(written > 20, "seeds written: {written}");
    // Every target got seeds, in the folders scripts/fuzz.sh reads.
    for target in ["frames", "tenant_rewrite", "responses"] {
        let seeds = std::fs::read_dir(corpus.root.join(target)).map(|d| d.count()).unwrap_or(0);
        assert!(seeds > 0, "no seeds in {}", corpus.root.join(target).display());
    }
}
