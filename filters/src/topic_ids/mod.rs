//! Stable topic ids across clusters: a client sees one id per topic name, whichever cluster it reaches.
//!
//! Kafka gives every topic a random id per cluster (KIP-516), and MirrorMaker's copy of a topic gets its own. A
//! client that sees a known name with a new id takes it for a topic deleted and re-created: franz-go keeps the
//! old id and fails every record with UNKNOWN_TOPIC_ID after a switch. So the gateway hands out *virtual* ids:
//! the id of the cluster that first showed the name to the gateway (no translation at all there), mapped to and
//! from each other cluster's own id for the same name ([`table`]). Sessions on a cluster whose ids are all the
//! virtual ones pay nothing; sessions on another cluster have the ids of the apis that carry them ([`walk`])
//! rewritten both ways. A virtual id whose topic the session's cluster has not shown yet is resolved by a
//! Metadata request of the gateway's own, by name, before the client's request is forwarded ([`lookup`]).
//!
//! The table lives in the gateway's memory: an instance that restarts while the failover is active hands out
//! the failover's ids, and a client that kept main's ids sees them change once (as without the gateway).

pub mod lookup;
pub mod table;
pub mod walk;

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use franzgate_api::filter::parse_config;
use franzgate_api::{
    BoxLayer, ConfigError, FilterContext, FilterError, FilterFactory, KafkaRequest, KafkaResponse, Session,
};
use futures::future::{BoxFuture, Either};
use lookup::Lookup;
use serde::Deserialize;
use table::{RealId, TopicIdTable};
use tower::{Layer, Service};
use uuid::Uuid;

/// The YAML type name.
pub const TYPE_NAME: &str = "topic-ids";

/// No settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicIdsConfig {}

/// Builds [`TopicIdsLayer`] from YAML.
#[derive(Debug)]
pub struct TopicIdsFactory;

impl FilterFactory for TopicIdsFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn create(&self, config: serde_yaml::Value, _ctx: &FilterContext) -> Result<BoxLayer, ConfigError> {
        let _: TopicIdsConfig = parse_config(config)?;
        Ok(BoxLayer::new(TopicIdsLayer::default()))
    }
}

/// Translates topic ids between what clients see and what each cluster calls its topics.
#[derive(Debug, Clone, Default)]
pub struct TopicIdsLayer {
    /// Shared by every session of the gateway.
    table: Arc<TopicIdTable>,
}

impl TopicIdsLayer {
    /// The table every session translates with.
    pub fn table(&self) -> &Arc<TopicIdTable> {
        &self.table
    }
}

impl<S> Layer<S> for TopicIdsLayer {
    type Service = TopicIdsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TopicIdsService { inner: Arc::new(Mutex::new(inner)), table: self.table.clone() }
    }
}

/// The service of [`TopicIdsLayer`].
#[derive(Debug, Clone)]
pub struct TopicIdsService<S> {
    /// The wrapped service, shared with the futures that look topics up before forwarding. The services inside
    /// (metadata rewrite, routing, the backend connection) are always ready, so such a call needs no wait.
    inner: Arc<Mutex<S>>,
    /// Virtual and real ids.
    table: Arc<TopicIdTable>,
}

use crate::lock;

impl<S> Service<KafkaRequest> for TopicIdsService<S>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = KafkaResponse;
    type Error = FilterError;
    type Future = Either<S::Future, BoxFuture<'static, Result<KafkaResponse, FilterError>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FilterError>> {
        lock(&self.inner).poll_ready(cx)
    }

    fn call(&mut self, request: KafkaRequest) -> Self::Future {
        let cluster = &request.session.cluster.name;
        let looked_at = request.api_key().is_some_and(|key| {
            walk::carries_ids(key, request.api_version())
                && (walk::names_ids(key) || self.table.needs_translation(cluster))
        });
        if !looked_at {
            return Either::Left(lock(&self.inner).call(request));
        }
        let (inner, table) = (self.inner.clone(), self.table.clone());
        Either::Right(Box::pin(translated(request, inner, table)))
    }
}

/// Forwards `request` with the cluster's own ids and answers with the ids clients see.
async fn translated<S>(
    mut request: KafkaRequest,
    inner: Arc<Mutex<S>>,
    table: Arc<TopicIdTable>,
) -> Result<KafkaResponse, FilterError>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    let session = request.session.clone();
    if table.needs_translation(&session.cluster.name) {
        to_cluster_ids(&mut request, &inner, &table).await;
    }
    let response = lock(&inner).call(request);
    let mut response = response.await?;
    to_client_ids(&mut response, &inner, session, &table).await;
    Ok(response)
}

/// Rewrites the virtual ids of `request` into the session's cluster's own, looking up by name the topics that
/// cluster has not shown yet. A body that does not decode is forwarded as it came: the broker answers it.
async fn to_cluster_ids<S>(request: &mut KafkaRequest, inner: &Mutex<S>, table: &TopicIdTable)
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    let session = request.session.clone();
    let cluster = session.cluster.name.as_str();
    let Ok(body) = request.body() else { return };
    let ids = walk::request_ids(body);
    let mut unresolved = Vec::new();
    for id in &ids {
        if let RealId::Unresolved(name) = table.real_id(cluster, *id)
            && !unresolved.contains(&name)
        {
            unresolved.push(name);
        }
    }
    if !unresolved.is_empty() {
        let asked = format!("{unresolved:?}");
        if let Err(error) = lookup::look_up(inner, session.clone(), Lookup::Names(unresolved), table).await {
            tracing::warn!(session = session.id, cluster, topics = asked, %error,
                "could not look up topic ids: the request is forwarded with the ids the client sent");
        }
    }
    let real = |id: Uuid| match table.real_id(cluster, id) {
        RealId::Known(real) => real,
        RealId::Unresolved(_) | RealId::Unknown => id,
    };
    if ids.iter().any(|id| real(*id) != *id)
        && let Ok(body) = request.body_mut()
    {
        walk::map_request_ids(body, &real);
    }
}

/// Learns the (name, id) pairs `response` states, then rewrites its ids into the ones clients see, looking up
/// ids not learned yet. A body that does not decode is returned as it came.
async fn to_client_ids<S>(response: &mut KafkaResponse, inner: &Mutex<S>, session: Arc<Session>, table: &TopicIdTable)
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    let cluster = session.cluster.name.as_str();
    if !response.has_body() {
        return;
    }
    let Ok(body) = response.body() else { return };
    for (name, id) in walk::named_ids(body) {
        table.learn(cluster, name, id);
    }
    if !table.needs_translation(cluster) {
        return;
    }
    let ids = walk::response_ids(body);
    let mut unknown: Vec<Uuid> = ids.iter().copied().filter(|id| table.virtual_id(cluster, *id).is_none()).collect();
    unknown.dedup();
    if !unknown.is_empty()
        && let Err(error) = lookup::look_up(inner, session.clone(), Lookup::Ids(unknown), table).await
    {
        tracing::warn!(session = session.id, cluster, %error,
            "could not look up topic ids: the response keeps the cluster's own ids");
    }
    let seen = |id: Uuid| table.virtual_id(cluster, id).unwrap_or(id);
    if ids.iter().any(|id| seen(*id) != *id)
        && let Ok(body) = response.body_mut()
    {
        walk::map_response_ids(body, &seen);
    }
}

#[cfg(test)]
mod tests;
