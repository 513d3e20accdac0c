//! MirrorMaker 2 for the cluster kit (`kafka.rs`): dedicated mode from a properties file.

use std::process::Command;

use super::kafka_bin;
use super::process::{Watched, tail};

/// MirrorMaker 2 in dedicated mode (`connect-mirror-maker mm2.properties`); stopped when dropped.
pub struct MirrorMaker {
    process: Watched,
    dir: tempfile::TempDir,
}

impl MirrorMaker {
    /// Starts MirrorMaker 2 with `properties` (the text of an mm2.properties file).
    pub fn start(properties: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("franzgate-mm2-").tempdir().expect("mm2 folder");
        let file = dir.path().join("mm2.properties");
        std::fs::write(&file, properties).expect("mm2.properties");
        let mut cmd = Command::new(kafka_bin("connect-mirror-maker"));
        cmd.arg(&file);
        let process = Watched::spawn(cmd, &dir.path().join("mm2.log"), "MirrorMaker 2");
        Self { process, dir }
    }

    /// The seed's mm2.properties (IdentityReplicationPolicy, every topic and group, offsets synced, 10 s
    /// refresh) between `main` and `failover`, with `extra` lines appended (e.g. shorter intervals for tests).
    pub fn seed_properties(main: &str, failover: &str, extra: &str) -> String {
        format!(
            "clusters = main, failover\n\
             main.bootstrap.servers = {main}\n\
             failover.bootstrap.servers = {failover}\n\
             main->failover.enabled = true\n\
             replication.policy.class=org.apache.kafka.connect.mirror.IdentityReplicationPolicy\n\
             main->failover.topics = .*\n\
             refresh.topics.interval.seconds=10\n\
             main.consumer.auto.offset.reset=earliest\n\
             main->failover.groups = .*\n\
             sync.group.offsets.enabled=true\n\
             refresh.groups.interval.seconds=10\n\
             replication.factor=1\n\
             checkpoints.topic.replication.factor=1\n\
             heartbeats.topic.replication.factor=1\n\
             offset-syncs.topic.replication.factor=1\n\
             offset.storage.replication.factor=1\n\
             status.storage.replication.factor=1\n\
             config.storage.replication.factor=1\n\
             {extra}"
        )
    }

    /// The last lines of MirrorMaker's log.
    pub fn log_tail(&self) -> String {
        tail(&self.dir.path().join("mm2.log"), 60)
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.process.exited()
    }

    /// The process id of MirrorMaker's JVM (for resource measurements).
    pub fn pid(&self) -> Option<u32> {
        self.process.child_pid().and_then(|p| u32::try_from(p).ok())
    }
}
