//! The control topic's records: the fleet's switch decision, and each instance's announcement.
//!
//! Keys: [`SWITCH_KEY`] for the decision (compaction keeps the latest per cluster), `instance/<id>` for each
//! announcement. Values are JSON.

use serde::{Deserialize, Serialize};

/// The key of the switch decision.
pub const SWITCH_KEY: &str = "switch";
/// The key prefix of switch history records (one per attempt, never overwritten).
pub const HISTORY_PREFIX: &str = "history/";
/// The key of a planned switch's produce fence.
pub const FENCE_KEY: &str = "fence";
/// The key prefix of instance announcements.
pub const INSTANCE_PREFIX: &str = "instance/";

/// Which cluster the fleet serves, decided by a switch call to one instance (or the fleet's start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchRecord {
    /// The cluster every instance serves.
    pub active: String,
    /// The cluster the deciding instance served before.
    #[serde(default)]
    pub from: String,
    /// One more than the highest epoch the deciding instance knew of.
    pub epoch: u64,
    /// When it was decided, milliseconds since the Unix epoch (by the deciding instance's clock).
    pub at_ms: u64,
    /// The instance that decided it.
    pub by: String,
    /// Who asked: the admin user (or `startup` for a fleet's first record).
    pub user: String,
}

impl SwitchRecord {
    /// The order every instance applies: the highest epoch wins; two decisions of the same epoch (two operators
    /// who switched at once, each reaching a cluster the other did not) are ordered by time, then by the
    /// deciding instance's id, so every instance that reads both picks the same one.
    pub fn rank(&self) -> (u64, u64, &str) {
        (self.epoch, self.at_ms, &self.by)
    }

    /// Whether `self` supersedes `other` (or there is none).
    pub fn supersedes(&self, other: Option<&SwitchRecord>) -> bool {
        other.is_none_or(|other| self.rank() > other.rank())
    }
}

/// A planned switch's fence: Produce to `cluster` is refused on every instance while replication catches up.
/// It holds only while the decision of `epoch` is the one applied: the switch's own decision (one epoch higher)
/// lifts it everywhere; a planned switch that gives up lifts it with `active: false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceRecord {
    /// The fenced cluster (the one switched away from).
    pub cluster: String,
    /// The epoch of the decision it belongs to.
    pub epoch: u64,
    /// False: lifted.
    pub active: bool,
    /// The instance running the planned switch.
    pub by: String,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl FenceRecord {
    /// Whether `self` was set after `other` (or there is none).
    pub fn supersedes(&self, other: Option<&FenceRecord>) -> bool {
        other.is_none_or(|other| (self.at_ms, &self.by) > (other.at_ms, &other.by))
    }
}

/// What an instance announces about itself, every few seconds, to every cluster it reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Its id (`gateway.fleet.instance_id`, by default its advertised host and admin port).
    pub id: String,
    /// Where its admin API listens.
    pub admin: String,
    /// The cluster it serves.
    pub active: String,
    /// The epoch of the switch decision it applied last (0: none yet).
    pub epoch: u64,
    /// When it said so, milliseconds since the Unix epoch.
    pub seen_ms: u64,
    /// The cluster whose Produce it refuses (a planned switch's fence), if any.
    #[serde(default)]
    pub fenced: Option<String>,
    /// Since when it has found the primary cluster unreachable, milliseconds since the Unix epoch (automatic
    /// failover's evidence; `None`: reachable, or not probed).
    #[serde(default)]
    pub primary_down_since_ms: Option<u64>,
}

/// One switch attempt: who, what, how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// When it was asked, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The instance asked.
    pub by: String,
    /// The admin user.
    pub user: String,
    /// The cluster served before.
    pub from: String,
    /// The target asked for.
    pub to: String,
    /// `unplanned` or `planned`.
    pub mode: String,
    /// Checks only.
    pub dry_run: bool,
    /// `force=true`.
    pub forced: bool,
    /// The answer's HTTP status.
    pub status: u16,
    /// The answer's message.
    pub outcome: String,
    /// How long the call took.
    pub duration_ms: u64,
    /// A planned switch: how long Produce was fenced.
    pub fenced_ms: Option<u64>,
    /// A planned switch: how long replication took to catch up.
    pub replication_wait_ms: Option<u64>,
    /// The pre-switch checks that failed.
    pub failed_checks: Vec<String>,
}

/// A record of the control topic, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlRecord {
    /// The switch decision.
    Switch(SwitchRecord),
    /// An announcement.
    Instance(InstanceRecord),
    /// A planned switch's fence.
    Fence(FenceRecord),
    /// A switch attempt.
    History(HistoryRecord),
}

impl ControlRecord {
    /// Decodes a record; `None` for a key this version does not know, a tombstone or a value that does not
    /// parse (logged by the caller).
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Option<Self>, String> {
        let key = std::str::from_utf8(key).map_err(|e| format!("key is not UTF-8: {e}"))?;
        if key == SWITCH_KEY {
            serde_json::from_slice(value).map(|r| Some(Self::Switch(r))).map_err(|e| format!("{key}: {e}"))
        } else if key == FENCE_KEY {
            serde_json::from_slice(value).map(|r| Some(Self::Fence(r))).map_err(|e| format!("{key}: {e}"))
        } else if key.starts_with(HISTORY_PREFIX) {
            serde_json::from_slice(value).map(|r| Some(Self::History(r))).map_err(|e| format!("{key}: {e}"))
        } else if key.starts_with(INSTANCE_PREFIX) {
            serde_json::from_slice(value).map(|r| Some(Self::Instance(r))).map_err(|e| format!("{key}: {e}"))
        } else {
            Ok(None)
        }
    }

    /// The key and value to write.
    pub fn encode(&self) -> (String, Vec<u8>) {
        match self {
            Self::Switch(r) => (SWITCH_KEY.to_string(), serde_json::to_vec(r).unwrap_or_default()),
            Self::Instance(r) => (format!("{INSTANCE_PREFIX}{}", r.id), serde_json::to_vec(r).unwrap_or_default()),
            Self::Fence(r) => (FENCE_KEY.to_string(), serde_json::to_vec(r).unwrap_or_default()),
            Self::History(r) => {
                (format!("{HISTORY_PREFIX}{}-{}", r.at_ms, r.by), serde_json::to_vec(r).unwrap_or_default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(active: &str, epoch: u64, at_ms: u64, by: &str) -> SwitchRecord {
        SwitchRecord { active: active.into(), from: "main".into(), epoch, at_ms, by: by.into(), user: "admin".into() }
    }

    #[test]
    fn the_highest_epoch_wins_whatever_its_time() {
        let older = decision("failover", 3, 9_000, "b");
        let newer = decision("main", 4, 1_000, "a");
        assert!(newer.supersedes(Some(&older)));
        assert!(!older.supersedes(Some(&newer)));
        assert!(older.supersedes(None));
    }

    #[test]
    fn two_decisions_of_one_epoch_are_ordered_by_time_then_by_instance_the_same_everywhere() {
        let first = decision("failover", 5, 1_000, "gw-b");
        let later = decision("main", 5, 2_000, "gw-a");
        assert!(later.supersedes(Some(&first)) && !first.supersedes(Some(&later)));
        let (a, b) = (decision("main", 5, 2_000, "gw-a"), decision("failover", 5, 2_000, "gw-b"));
        assert!(b.supersedes(Some(&a)) && !a.supersedes(Some(&b)), "same time: the greater instance id");
        assert!(!a.supersedes(Some(&a.clone())), "a decision does not supersede itself");
    }

    #[test]
    fn records_round_trip_and_unknown_keys_are_ignored() {
        let switch = ControlRecord::Switch(decision("failover", 2, 7, "gw"));
        let (key, value) = switch.encode();
        assert_eq!(ControlRecord::decode(key.as_bytes(), &value), Ok(Some(switch)));
        let instance = ControlRecord::Instance(InstanceRecord {
            id: "gw-1".into(),
            admin: "127.0.0.1:8888".into(),
            active: "main".into(),
            epoch: 2,
            seen_ms: 5,
            fenced: Some("main".into()),
            primary_down_since_ms: None,
        });
        let (key, value) = instance.encode();
        assert_eq!(key, "instance/gw-1");
        assert_eq!(ControlRecord::decode(key.as_bytes(), &value), Ok(Some(instance)));
        let fence = ControlRecord::Fence(FenceRecord {
            cluster: "main".into(),
            epoch: 2,
            active: true,
            by: "gw".into(),
            at_ms: 9,
        });
        let (key, value) = fence.encode();
        assert_eq!(ControlRecord::decode(key.as_bytes(), &value), Ok(Some(fence)));
        assert_eq!(ControlRecord::decode(b"something-else", b"{}"), Ok(None));
        assert!(ControlRecord::decode(b"switch", b"not json").is_err());
    }
}
