//! The gateway's own Metadata request, on the session's backend connection, for the ids a cluster gives topics
//! a client names by another cluster's id (or a response names by an id not yet learned).

use std::sync::{Arc, Mutex};

use franzgate_api::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use franzgate_api::kafka_protocol::messages::{ApiKey, MetadataRequest, RequestKind, TopicName};
use franzgate_api::kafka_protocol::protocol::StrBytes;
use franzgate_api::{FilterError, KafkaRequest, KafkaResponse, Session};
use tower::Service;
use uuid::Uuid;

use super::table::TopicIdTable;
use super::walk;

/// Metadata v12 (Kafka 3.1+): the first version whose request may name topics by id.
const METADATA_VERSION: i16 = 12;
/// A lookup that takes longer is given up: the client's request goes on with the ids it has.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What to ask the cluster about.
#[derive(Debug)]
pub enum Lookup {
    /// Topics by name: their ids on this cluster.
    Names(Vec<String>),
    /// Topics by this cluster's ids: their names.
    Ids(Vec<Uuid>),
}

/// Asks the session's cluster for `lookup` and learns every (name, id) it answers into `table`. A topic the
/// cluster does not have is simply not learned.
pub async fn look_up<S>(
    inner: &Mutex<S>,
    session: Arc<Session>,
    lookup: Lookup,
    table: &TopicIdTable,
) -> Result<(), FilterError>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    let topics = match lookup {
        Lookup::Names(names) => names
            .into_iter()
            .map(|name| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(name)))))
            .collect(),
        Lookup::Ids(ids) => ids.into_iter().map(|id| MetadataRequestTopic::default().with_topic_id(id)).collect(),
    };
    let body = MetadataRequest::default().with_topics(Some(topics)).with_allow_auto_topic_creation(false);
    let cluster = session.cluster.name.clone();
    let request = KafkaRequest::out_of_band(ApiKey::Metadata, METADATA_VERSION, RequestKind::Metadata(body), session);
    let response = super::lock(inner).call(request);
    let mut response = tokio::time::timeout(LOOKUP_TIMEOUT, response)
        .await
        .map_err(|_| FilterError::Unreachable(format!("no Metadata answer within {LOOKUP_TIMEOUT:?}")))??;
    for (name, id) in walk::named_ids(response.body()?) {
        table.learn(&cluster, name, id);
    }
    Ok(())
}
