//! Pre-switch checks: what a switch to a cluster would find there, run before every switch and alone with
//! `?dryRun=true`.
//!
//! - `target-reachable`: the target accepts a connection and the gateway's credentials for it, and lists its
//!   topics and groups;
//! - `topics-on-target`: every topic clients asked Metadata for in the last 15 minutes exists on the target;
//! - `groups-on-target`: every consumer group clients joined or committed to in that time exists on the target
//!   (MirrorMaker's checkpoints create it there with translated offsets);
//! - `replication`: per partition of those topics, whether the target's copy ends with the active cluster's
//!   last record (for a dry run and a planned switch; an unplanned switch, the emergency path, does not wait
//!   for it).

use std::time::Duration;

use serde::Serialize;

use super::Fleet;

/// Names clients used within this long are the ones checked.
const USED_WITHIN: Duration = Duration::from_secs(15 * 60);
/// Names listed in a check's detail at most.
const LISTED: usize = 20;

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Its name.
    pub name: &'static str,
    /// Passed.
    pub ok: bool,
    /// What it found.
    pub detail: String,
}

/// Every check's result, for the switch answer.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The cluster checked.
    pub target: String,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

impl CheckReport {
    /// Whether the target is reachable with the gateway's credentials.
    pub fn reachable(&self) -> bool {
        self.checks.iter().any(|c| c.name == "target-reachable" && c.ok)
    }

    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The names of the checks that failed.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect()
    }
}

fn listed(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(LISTED).map(String::as_str).collect();
    let more = names.len().saturating_sub(LISTED);
    if more > 0 { format!("{} and {more} more", shown.join(", ")) } else { shown.join(", ") }
}

impl Fleet {
    /// Runs the checks of a switch from the active cluster to `target`; `replication` only when asked (it reads
    /// the tails of every partition on both clusters: an unplanned switch, the emergency path, skips it).
    pub async fn check(&self, target: &str, replication: bool) -> CheckReport {
        let mut checks = Vec::new();
        let Some(to) = self.selector.clusters().iter().find(|c| c.name == target).cloned() else {
            let detail = format!("no cluster named `{target}`");
            return CheckReport {
                target: target.into(),
                checks: vec![Check { name: "target-reachable", ok: false, detail }],
            };
        };
        let from = self.selector.active().cluster.clone();
        let existing = self.client(&to).existing_names().await;
        let existing = match existing {
            Ok(existing) => {
                let detail = format!("{} topics, {} groups listed", existing.topics.len(), existing.groups.len());
                checks.push(Check { name: "target-reachable", ok: true, detail });
                existing
            }
            Err(reason) => {
                checks.push(Check { name: "target-reachable", ok: false, detail: reason });
                return CheckReport { target: target.into(), checks };
            }
        };
        let topics: Vec<String> =
            self.selector.used_topics(USED_WITHIN).into_iter().filter(|t| super::planned::mirrored_kind(t)).collect();
        let missing: Vec<String> = topics.iter().filter(|t| !existing.topics.contains(t)).cloned().collect();
        let detail = if missing.is_empty() {
            format!("all {} topics clients used are there", topics.len())
        } else {
            format!("{} of {} topics clients used are missing: {}", missing.len(), topics.len(), listed(&missing))
        };
        checks.push(Check { name: "topics-on-target", ok: missing.is_empty(), detail });
        let groups = self.selector.used_groups(USED_WITHIN);
        let missing: Vec<String> = groups.iter().filter(|g| !existing.groups.contains(g)).cloned().collect();
        let detail = if missing.is_empty() {
            format!("all {} groups clients used are there", groups.len())
        } else {
            format!("{} of {} groups clients used are missing: {}", missing.len(), groups.len(), listed(&missing))
        };
        checks.push(Check { name: "groups-on-target", ok: missing.is_empty(), detail });
        if replication && from.name != to.name {
            checks.push(self.replication_check(&from, &to, &topics).await);
        }
        CheckReport { target: target.into(), checks }
    }

    async fn replication_check(
        &self,
        from: &std::sync::Arc<franzgate_api::topology::BackendCluster>,
        to: &std::sync::Arc<franzgate_api::topology::BackendCluster>,
        topics: &[String],
    ) -> Check {
        if topics.is_empty() {
            return Check { name: "replication", ok: true, detail: "no topic to compare".into() };
        }
        let source = self.client(from).partition_tails(Some(topics)).await;
        let copies = self.client(to).partition_tails(Some(topics)).await;
        match (source, copies) {
            (Ok(source), Ok(copies)) => {
                let behind: Vec<String> = source
                    .iter()
                    .filter(|(p, tail)| !tail.copied_by(copies.get(*p)))
                    .map(|((topic, partition), tail)| {
                        let copy_end = copies.get(&(topic.clone(), *partition)).map_or(-1, |c| c.end);
                        format!("{topic}[{partition}] (source end {}, target end {copy_end})", tail.end)
                    })
                    .collect();
                let detail = if behind.is_empty() {
                    format!("every partition of {} topics copied to its end", topics.len())
                } else {
                    format!("{} partitions not copied to their end: {}", behind.len(), listed(&behind))
                };
                Check { name: "replication", ok: behind.is_empty(), detail }
            }
            (Err(reason), _) => {
                Check { name: "replication", ok: false, detail: format!("the active cluster is unreadable: {reason}") }
            }
            (_, Err(reason)) => {
                Check { name: "replication", ok: false, detail: format!("the target is unreadable: {reason}") }
            }
        }
    }
}
