//! The state store's reading of records: the first token secret, signatures, the upgrade path.

use franzgate_api::topology::BackendCluster;

use super::*;

const SECRET: &[u8] = b"fleet secret";

fn store() -> StateStore {
    let cluster = Arc::new(BackendCluster::new("main", Vec::new()));
    let selector = Arc::new(ClusterSelector::new(vec![cluster]).expect("one cluster"));
    let registry = Arc::new(VirtualClusters::new(false));
    let (timeout, refresh) = (Duration::from_secs(1), Duration::from_secs(1));
    StateStore::new(registry, selector, BackendSecurityMap::default(), "_state".into(), timeout, 1 << 20, refresh)
}

/// A record as read back, signed by `signer` if given.
fn read(offset: i64, record: Option<&StateRecord>, key: &str, signer: Option<&RecordSigner>) -> ReadRecord {
    let value = record.map(|r| Bytes::from(serde_json::to_vec(r).expect("json")));
    let headers = signer
        .map(|s| vec![(SIGNATURE_HEADER.to_string(), Some(s.sign(Some(key.as_bytes()), value.as_deref())))])
        .unwrap_or_default();
    ReadRecord { offset, key: Some(Bytes::from(key.to_string())), value, headers }
}

fn vcluster(name: &str, prefix: &str) -> StateRecord {
    StateRecord::VirtualCluster { name: name.into(), prefix: prefix.into() }
}

fn account(generation: u32, revoked: bool) -> StateRecord {
    StateRecord::ServiceAccount { vcluster: "teamA".into(), username: "sa".into(), generation, revoked }
}

#[test]
fn the_first_token_secret_in_the_topic_stands_until_its_key_is_deleted() {
    let store = store().with_signing_secret(Some(SECRET));
    let fleet = RecordSigner::from_token_secret(SECRET);
    store.apply_all(&[read(0, Some(&vcluster("teamA", "teamA")), "vcluster/teamA", Some(&fleet))]);
    assert_eq!(store.first_secret(), None);
    let secrets: Vec<_> = [(1, "first"), (2, "second"), (3, "first")]
        .map(|(offset, secret)| read(offset, Some(&token_secret_record(secret)), TOKEN_SECRET_KEY, None))
        .to_vec();
    store.apply_all(&secrets);
    assert_eq!(store.first_secret().as_deref(), Some("first"), "a racing instance's later record loses");
    // A secret record under another key is not the secret.
    store.apply_all(&[read(4, Some(&token_secret_record("forged")), "vcluster/x", Some(&fleet))]);
    assert_eq!(store.first_secret().as_deref(), Some("first"));
    // Deleted: the next secret written is the one.
    store.apply_all(&[read(5, None, TOKEN_SECRET_KEY, None)]);
    assert_eq!(store.first_secret(), None);
    store.apply_all(&[read(6, Some(&token_secret_record("rotated")), TOKEN_SECRET_KEY, None)]);
    assert_eq!(store.first_secret().as_deref(), Some("rotated"));
    assert!(store.registry.get("teamA").is_some(), "deleting the secret deletes no virtual cluster");
}

#[test]
fn a_generated_secret_signs_records_read_before_it_in_the_same_read() {
    let store = store();
    let fleet = RecordSigner::from_token_secret(b"generated");
    let tally = store.apply_all(&[
        read(0, Some(&vcluster("teamA", "teamA")), "vcluster/teamA", Some(&fleet)),
        read(1, Some(&token_secret_record("generated")), TOKEN_SECRET_KEY, None),
    ]);
    assert_eq!(tally.rejected, 0);
    assert!(store.registry.get("teamA").is_some());
    // The key stays the first secret's for as long as the instance runs, whatever the topic says later.
    store.apply_all(&[read(2, None, TOKEN_SECRET_KEY, None)]);
    store.apply_all(&[read(3, Some(&token_secret_record("attacker's")), TOKEN_SECRET_KEY, None)]);
    let forger = RecordSigner::from_token_secret(b"attacker's");
    let tally = store.apply_all(&[read(4, Some(&vcluster("evil", "evil")), "vcluster/evil", Some(&forger))]);
    assert_eq!(tally.rejected, 1);
    assert!(store.registry.get("evil").is_none());
}

#[test]
fn unsigned_forged_and_tampered_records_are_rejected_and_counted() {
    let store = store().with_signing_secret(Some(SECRET));
    let fleet = RecordSigner::from_token_secret(SECRET);
    let forger = RecordSigner::from_token_secret(b"guess");
    let tally = store.apply_all(&[
        read(0, Some(&vcluster("teamA", "teamA")), "vcluster/teamA", Some(&fleet)),
        read(1, Some(&account(0, false)), "account/teamA/sa", Some(&fleet)),
        // A revocation written straight to the backend: unsigned, then signed with a guessed secret.
        read(2, Some(&account(1, true)), "account/teamA/sa", None),
        read(3, Some(&account(2, true)), "account/teamA/sa", Some(&forger)),
        // A deletion of the tenant, unsigned.
        read(4, None, "vcluster/teamA", None),
    ]);
    assert_eq!(tally.rejected, 3);
    assert!(tally.unsigned_accepted.is_empty());
    assert!(store.registry.check_token("teamA", "sa", 0).is_ok(), "the account still logs in");
    // A signed record's value swapped for another keeps its signature no more.
    let mut tampered = read(5, Some(&account(0, true)), "account/teamA/sa", None);
    tampered.headers = read(5, Some(&account(9, true)), "account/teamA/sa", Some(&fleet)).headers;
    assert_eq!(store.apply_all(&[tampered]).rejected, 1);
    assert!(store.registry.check_token("teamA", "sa", 0).is_ok());
}

#[test]
fn unsigned_records_of_an_older_gateway_are_applied_only_when_accepted_and_then_re_signed() {
    let legacy = [
        read(0, Some(&vcluster("teamA", "teamA")), "vcluster/teamA", None),
        read(1, Some(&account(0, false)), "account/teamA/sa", None),
        read(2, Some(&account(1, false)), "account/teamA/sa", None),
    ];
    let strict = store().with_signing_secret(Some(SECRET));
    assert_eq!(strict.apply_all(&legacy).rejected, 3);
    assert!(strict.registry.get("teamA").is_none());
    let migrating = store().with_signing_secret(Some(SECRET)).accepting_unsigned(true);
    let tally = migrating.apply_all(&legacy);
    assert_eq!(tally.rejected, 0);
    assert!(migrating.registry.check_token("teamA", "sa", 1).is_ok());
    // What is written back is the current state of each key, not the records as read.
    assert_eq!(migrating.current_records(&tally.unsigned_accepted), [vcluster("teamA", "teamA"), account(1, false)]);
}
