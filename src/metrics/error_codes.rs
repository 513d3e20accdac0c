//! The Kafka error codes a response carries, top-level and per topic, partition, group or member, for the apis
//! clients use most. Other apis are not inspected.

use franzgate_api::kafka_protocol::messages::ResponseKind;

/// Calls `each` with every error code in `body` (zeros included); false if the api is not inspected.
pub fn error_codes(body: &ResponseKind, mut each: impl FnMut(i16)) -> bool {
    match body {
        ResponseKind::Produce(b) => {
            b.responses.iter().flat_map(|t| &t.partition_responses).for_each(|p| each(p.error_code))
        }
        ResponseKind::Fetch(b) => {
            each(b.error_code);
            b.responses.iter().flat_map(|t| &t.partitions).for_each(|p| each(p.error_code));
        }
        ResponseKind::Metadata(b) => {
            each(b.error_code);
            for topic in &b.topics {
                each(topic.error_code);
                topic.partitions.iter().for_each(|p| each(p.error_code));
            }
        }
        ResponseKind::FindCoordinator(b) => {
            each(b.error_code);
            b.coordinators.iter().for_each(|c| each(c.error_code));
        }
        ResponseKind::OffsetCommit(b) => b.topics.iter().flat_map(|t| &t.partitions).for_each(|p| each(p.error_code)),
        ResponseKind::OffsetFetch(b) => {
            each(b.error_code);
            b.topics.iter().flat_map(|t| &t.partitions).for_each(|p| each(p.error_code));
            for group in &b.groups {
                each(group.error_code);
                group.topics.iter().flat_map(|t| &t.partitions).for_each(|p| each(p.error_code));
            }
        }
        ResponseKind::ListOffsets(b) => b.topics.iter().flat_map(|t| &t.partitions).for_each(|p| each(p.error_code)),
        ResponseKind::JoinGroup(b) => each(b.error_code),
        ResponseKind::SyncGroup(b) => each(b.error_code),
        ResponseKind::Heartbeat(b) => each(b.error_code),
        ResponseKind::LeaveGroup(b) => {
            each(b.error_code);
            b.members.iter().for_each(|m| each(m.error_code));
        }
        ResponseKind::InitProducerId(b) => each(b.error_code),
        ResponseKind::ApiVersions(b) => each(b.error_code),
        ResponseKind::SaslHandshake(b) => each(b.error_code),
        ResponseKind::SaslAuthenticate(b) => each(b.error_code),
        ResponseKind::CreateTopics(b) => b.topics.iter().for_each(|t| each(t.error_code)),
        ResponseKind::DeleteTopics(b) => b.responses.iter().for_each(|t| each(t.error_code)),
        ResponseKind::DescribeGroups(b) => b.groups.iter().for_each(|g| each(g.error_code)),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use franzgate_api::kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
    use franzgate_api::kafka_protocol::messages::{ListGroupsResponse, ProduceResponse};

    #[test]
    fn partition_level_codes_are_found_and_uninspected_apis_say_so() {
        let partitions = [0, 6, 6].map(|code| PartitionProduceResponse::default().with_error_code(code)).to_vec();
        let body = ResponseKind::Produce(
            ProduceResponse::default()
                .with_responses(vec![TopicProduceResponse::default().with_partition_responses(partitions)]),
        );
        let mut codes = Vec::new();
        assert!(error_codes(&body, |c| codes.push(c)));
        assert_eq!(codes, vec![0, 6, 6]);
        assert!(!error_codes(&ResponseKind::ListGroups(ListGroupsResponse::default()), |_| {}));
    }
}
