//! Representative APIs: the error lands on every item, and names / indices match the request.

use super::*;

#[test]
fn produce_errors_every_partition_by_name_and_by_id() {
    use produce_request::{PartitionProduceData, TopicProduceData};
    for version in [3, 8, 9, 12, 13] {
        let by_id = version >= 13;
        let topic_data = [("orders", 1u8, vec![0, 1]), ("payments", 2u8, vec![7])]
            .into_iter()
            .map(|(name, seed, partitions)| {
                let mut t = TopicProduceData::default().with_partition_data(
                    partitions.into_iter().map(|index| PartitionProduceData::default().with_index(index)).collect(),
                );
                if by_id {
                    t.topic_id = uuid!(seed);
                } else {
                    t.name = topic(name);
                }
                t
            })
            .collect::<Vec<_>>();
        let request = ProduceRequest::default().with_acks(-1).with_topic_data(topic_data.clone());
        let response = respond!(Produce, request, version);

        assert_eq!(response.responses.len(), 2, "v{version}");
        for (sent, got) in topic_data.iter().zip(&response.responses) {
            if by_id {
                assert_eq!(got.topic_id, sent.topic_id);
            } else {
                assert_eq!(got.name, sent.name);
            }
            let indexes: Vec<i32> = got.partition_responses.iter().map(|p| p.index).collect();
            let sent_indexes: Vec<i32> = sent.partition_data.iter().map(|p| p.index).collect();
            assert_eq!(indexes, sent_indexes);
            for p in &got.partition_responses {
                assert_eq!(p.error_code, CODE);
                assert_eq!((p.base_offset, p.log_append_time_ms), (-1, -1));
                if version >= 5 {
                    assert_eq!(p.log_start_offset, -1);
                }
            }
        }
    }
}

fn assert_fetch_partitions(request: &FetchRequest, response: &FetchResponse, by_id: bool) {
    assert_eq!(response.responses.len(), request.topics.len());
    for (sent, got) in request.topics.iter().zip(&response.responses) {
        if by_id {
            assert_eq!(got.topic_id, sent.topic_id);
        } else {
            assert_eq!(got.topic, sent.topic);
        }
        let indexes: Vec<i32> = got.partitions.iter().map(|p| p.partition_index).collect();
        let sent_indexes: Vec<i32> = sent.partitions.iter().map(|p| p.partition).collect();
        assert_eq!(indexes, sent_indexes);
        for p in &got.partitions {
            assert_eq!(p.error_code, CODE);
            assert_eq!((p.high_watermark, p.last_stable_offset), (-1, -1));
        }
    }
}

#[test]
fn fetch_by_topic_name() {
    for version in [4, 6, 7, 11, 12] {
        let request = fetch_request(false).with_session_id(if version >= 7 { 77 } else { 0 });
        let response = respond!(Fetch, request.clone(), version);
        // The top-level error only exists from v7.
        assert_eq!(response.error_code, if version >= 7 { CODE } else { 0 }, "v{version}");
        assert_eq!(response.session_id, request.session_id);
        assert_fetch_partitions(&request, &response, false);
    }
}

#[test]
fn fetch_by_topic_id() {
    for version in [13, 16, 18] {
        let request = fetch_request(true);
        let response = respond!(Fetch, request.clone(), version);
        assert_eq!(response.error_code, CODE, "v{version}");
        assert_fetch_partitions(&request, &response, true);
    }
}

#[test]
fn metadata_named_topics_each_get_the_error() {
    use metadata_request::MetadataRequestTopic;
    for version in [0, 1, 9, 12, 13] {
        let mut topics = vec![
            MetadataRequestTopic::default().with_name(Some(topic("a"))),
            MetadataRequestTopic::default().with_name(Some(topic("b"))),
        ];
        if version >= 10 {
            // From v10 a topic may be asked for by id alone.
            topics.push(MetadataRequestTopic::default().with_name(None).with_topic_id(uuid!(9)));
        }
        let request = MetadataRequest::default().with_topics(Some(topics.clone()));
        let response = respond!(Metadata, request, version);

        assert_eq!(response.topics.len(), topics.len(), "v{version}");
        for (sent, got) in topics.iter().zip(&response.topics) {
            assert_eq!(got.error_code, CODE);
            assert_eq!(got.name, Some(sent.name.clone().unwrap_or_default()));
            if version >= 10 {
                assert_eq!(got.topic_id, sent.topic_id);
            }
            assert!(got.partitions.is_empty());
        }
        // Named topics carry the error themselves; the top-level code stays clear.
        assert_eq!(response.error_code, 0);
    }
}

#[test]
fn metadata_all_topics_uses_the_top_level_error_where_it_exists() {
    for version in 1..=13 {
        let request = MetadataRequest::default().with_topics(None);
        let response = respond!(Metadata, request, version);
        assert!(response.topics.is_empty(), "v{version}");
        assert_eq!(response.error_code, if version >= 13 { CODE } else { 0 });
    }
}

#[test]
fn find_coordinator_v3_answers_at_the_top_level() {
    for version in 0..=3 {
        let request = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g1"));
        let response = respond!(FindCoordinator, request, version);
        assert_eq!(response.error_code, CODE, "v{version}");
        assert_eq!(response.node_id, BrokerId(-1));
        assert_eq!(response.port, -1);
        assert!(response.coordinators.is_empty());
    }
}

#[test]
fn find_coordinator_v4_answers_once_per_key() {
    let keys = ["g1", "g2", "txn-7"].map(StrBytes::from_static_str).to_vec();
    for version in 4..=6 {
        let request = FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(keys.clone());
        let response = respond!(FindCoordinator, request, version);
        assert_eq!(response.coordinators.len(), keys.len(), "v{version}");
        for (key, c) in keys.iter().zip(&response.coordinators) {
            assert_eq!(&c.key, key);
            assert_eq!(c.error_code, CODE);
            assert_eq!((c.node_id, c.port), (BrokerId(-1), -1));
        }
    }
}

#[test]
fn join_group_carries_the_error_and_no_generation() {
    for version in 0..=9 {
        let request = JoinGroupRequest::default().with_group_id(group("g"));
        let response = respond!(JoinGroup, request, version);
        assert_eq!(response.error_code, CODE, "v{version}");
        assert_eq!(response.generation_id, -1);
        assert!(response.members.is_empty());
        // Nullable only from v7.
        let expected = if version >= 7 { None } else { Some(StrBytes::default()) };
        assert_eq!(response.protocol_name, expected);
    }
}

#[test]
fn offset_commit_errors_every_partition() {
    use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let topics = vec![
        OffsetCommitRequestTopic::default().with_name(topic("a")).with_partitions(vec![
            OffsetCommitRequestPartition::default().with_partition_index(0),
            OffsetCommitRequestPartition::default().with_partition_index(3),
        ]),
        OffsetCommitRequestTopic::default()
            .with_name(topic("b"))
            .with_partitions(vec![OffsetCommitRequestPartition::default().with_partition_index(1)]),
    ];
    for version in 2..=9 {
        let request = OffsetCommitRequest::default().with_group_id(group("g")).with_topics(topics.clone());
        let response = respond!(OffsetCommit, request, version);
        assert_eq!(response.topics.len(), 2, "v{version}");
        for (sent, got) in topics.iter().zip(&response.topics) {
            assert_eq!(got.name, sent.name);
            let got_parts: Vec<(i32, i16)> = got.partitions.iter().map(|p| (p.partition_index, p.error_code)).collect();
            let want: Vec<(i32, i16)> = sent.partitions.iter().map(|p| (p.partition_index, CODE)).collect();
            assert_eq!(got_parts, want);
        }
    }
}

#[test]
fn offset_fetch_single_group_and_batched_layouts() {
    use offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics};
    for version in 1..=7 {
        let request = OffsetFetchRequest::default().with_group_id(group("g")).with_topics(Some(vec![
            OffsetFetchRequestTopic::default().with_name(topic("a")).with_partition_indexes(vec![0, 5]),
        ]));
        let response = respond!(OffsetFetch, request, version);
        assert_eq!(response.error_code, if version >= 2 { CODE } else { 0 }, "v{version}");
        assert_eq!(response.topics.len(), 1);
        assert_eq!(response.topics[0].name, topic("a"));
        let parts: Vec<(i32, i16, i64)> = response.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.error_code, p.committed_offset))
            .collect();
        assert_eq!(parts, vec![(0, CODE, -1), (5, CODE, -1)]);
    }
    for version in 8..=9 {
        let request = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default().with_group_id(group("g1")).with_topics(Some(vec![
                OffsetFetchRequestTopics::default().with_name(topic("a")).with_partition_indexes(vec![2]),
            ])),
            OffsetFetchRequestGroup::default().with_group_id(group("g2")).with_topics(None),
        ]);
        let response = respond!(OffsetFetch, request, version);
        let groups: Vec<(GroupId, i16)> = response.groups.iter().map(|g| (g.group_id.clone(), g.error_code)).collect();
        assert_eq!(groups, vec![(group("g1"), CODE), (group("g2"), CODE)], "v{version}");
        let first = &response.groups[0].topics[0];
        assert_eq!(first.name, topic("a"));
        assert_eq!((first.partitions[0].partition_index, first.partitions[0].error_code), (2, CODE));
        assert!(response.groups[1].topics.is_empty());
    }
}

#[test]
fn create_topics_errors_every_topic() {
    use create_topics_request::CreatableTopic;
    let names = ["t1", "t2", "t3"];
    for version in 2..=7 {
        let request = CreateTopicsRequest::default()
            .with_topics(names.iter().map(|&n| CreatableTopic::default().with_name(topic(n))).collect());
        let response = respond!(CreateTopics, request, version);
        assert_eq!(response.topics.len(), names.len(), "v{version}");
        for (name, got) in names.iter().zip(&response.topics) {
            assert_eq!(got.name, topic(name));
            assert_eq!(got.error_code, CODE);
            assert_eq!(got.error_message, None);
            if version >= 5 {
                assert_eq!((got.num_partitions, got.replication_factor), (-1, -1));
            }
        }
    }
}

#[test]
fn delete_topics_by_name_and_by_id() {
    use delete_topics_request::DeleteTopicState;
    for version in 1..=5 {
        let request = DeleteTopicsRequest::default().with_topic_names(vec![topic("x"), topic("y")]);
        let response = respond!(DeleteTopics, request, version);
        let got: Vec<(Option<TopicName>, i16)> =
            response.responses.iter().map(|r| (r.name.clone(), r.error_code)).collect();
        assert_eq!(got, vec![(Some(topic("x")), CODE), (Some(topic("y")), CODE)], "v{version}");
    }
    let request = DeleteTopicsRequest::default().with_topics(vec![
        DeleteTopicState::default().with_name(Some(topic("x"))),
        DeleteTopicState::default().with_name(None).with_topic_id(uuid!(5)),
    ]);
    let response = respond!(DeleteTopics, request.clone(), 6);
    assert_eq!(response.responses.len(), 2);
    assert_eq!(response.responses[0].name, Some(topic("x")));
    assert_eq!(response.responses[1].name, None);
    assert_eq!(response.responses[1].topic_id, request.topics[1].topic_id);
    assert!(response.responses.iter().all(|r| r.error_code == CODE));
}

#[test]
fn describe_configs_errors_every_resource() {
    use describe_configs_request::DescribeConfigsResource;
    let resources = vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("orders")),
        DescribeConfigsResource::default().with_resource_type(4).with_resource_name(StrBytes::from_static_str("1")),
    ];
    for version in 1..=4 {
        let request = DescribeConfigsRequest::default().with_resources(resources.clone());
        let response = respond!(DescribeConfigs, request, version);
        assert_eq!(response.results.len(), resources.len(), "v{version}");
        for (sent, got) in resources.iter().zip(&response.results) {
            assert_eq!(got.resource_type, sent.resource_type);
            assert_eq!(got.resource_name, sent.resource_name);
            assert_eq!(got.error_code, CODE);
            assert!(got.configs.is_empty());
        }
    }
}

#[test]
fn add_partitions_to_txn_per_partition_then_top_level() {
    use add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
    let topics = vec![AddPartitionsToTxnTopic::default().with_name(topic("a")).with_partitions(vec![0, 1])];
    for version in 0..=3 {
        let request = AddPartitionsToTxnRequest::default().with_v3_and_below_topics(topics.clone());
        let response = respond!(AddPartitionsToTxn, request, version);
        let results = &response.results_by_topic_v3_and_below;
        assert_eq!(results.len(), 1, "v{version}");
        assert_eq!(results[0].name, topic("a"));
        let parts: Vec<(i32, i16)> =
            results[0].results_by_partition.iter().map(|p| (p.partition_index, p.partition_error_code)).collect();
        assert_eq!(parts, vec![(0, CODE), (1, CODE)]);
    }
    for version in 4..=5 {
        let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(StrBytes::from_static_str("tx").into())
                .with_topics(topics.clone()),
        ]);
        let response = respond!(AddPartitionsToTxn, request, version);
        assert_eq!(response.error_code, CODE, "v{version}");
        let txn = &response.results_by_transaction[0];
        assert_eq!(txn.topic_results[0].results_by_partition.len(), 2);
    }
}

/// The "top-level error only" family: Heartbeat, and SaslAuthenticate with a null message.
#[test]
fn top_level_family_sets_error_code() {
    for version in 0..=4 {
        let response = respond!(Heartbeat, HeartbeatRequest::default(), version);
        assert_eq!(response.error_code, CODE, "v{version}");
    }
    for version in 0..=2 {
        let response = respond!(SaslAuthenticate, SaslAuthenticateRequest::default(), version);
        assert_eq!(response.error_code, CODE, "v{version}");
        assert_eq!(response.error_message, None);
    }
}

#[test]
fn describe_log_dirs_error_is_visible_at_every_version() {
    for version in 1..=4 {
        let response = respond!(DescribeLogDirs, DescribeLogDirsRequest::default(), version);
        if version >= 3 {
            assert_eq!(response.error_code, CODE);
            assert!(response.results.is_empty());
        } else {
            assert_eq!(response.results.len(), 1);
            assert_eq!(response.results[0].error_code, CODE);
        }
    }
}
