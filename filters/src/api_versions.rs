//! Advertises only api versions the gateway can decode.
//!
//! A client picks, per api, the highest version both it and the broker support. If the broker is newer than
//! the gateway's protocol library, a client could pick a version no filter could read or rewrite (a Metadata
//! response whose broker addresses the gateway cannot replace would leak the backend). So each api the
//! gateway knows is capped to the versions it decodes ([`decodable_versions`]); apis it does not know are left
//! as the broker says — their frames cross the gateway untouched.

use std::task::{Context, Poll};

use franzgate_api::filter::parse_config;
use franzgate_api::kafka_protocol::messages::{ApiKey, ResponseKind};
use franzgate_api::kafka_protocol::protocol::VersionRange;
use franzgate_api::{BoxLayer, ConfigError, FilterContext, FilterError, FilterFactory, KafkaRequest, KafkaResponse};
use serde::Deserialize;
use tower::{Layer, Service};

use franzgate_api::rewrite::{Rewrite, RewriteResponse};

/// The YAML type name.
pub const TYPE_NAME: &str = "api-versions";

/// No settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiVersionsConfig {}

/// Builds [`ApiVersionsLayer`] from YAML.
#[derive(Debug)]
pub struct ApiVersionsFactory;

/// Caps advertised versions to those the gateway decodes.
#[derive(Debug, Clone, Default)]
pub struct ApiVersionsLayer;

/// The service of [`ApiVersionsLayer`].
#[derive(Debug, Clone)]
pub struct ApiVersions<S> {
    /// The wrapped service.
    inner: S,
}

/// The rewrite applied to ApiVersions responses.
#[derive(Debug)]
pub struct CapVersions;

// === impl ApiVersionsFactory ===

impl FilterFactory for ApiVersionsFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn create(&self, config: serde_yaml::Value, _ctx: &FilterContext) -> Result<BoxLayer, ConfigError> {
        let _: ApiVersionsConfig = parse_config(config)?;
        Ok(BoxLayer::new(ApiVersionsLayer))
    }
}

impl<S> Layer<S> for ApiVersionsLayer {
    type Service = ApiVersions<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiVersions { inner }
    }
}

// === impl ApiVersions ===

impl<S> Service<KafkaRequest> for ApiVersions<S>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    type Response = KafkaResponse;
    type Error = FilterError;
    type Future = RewriteResponse<S::Future, CapVersions>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FilterError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: KafkaRequest) -> Self::Future {
        let rewrite = (request.api_key() == Some(ApiKey::ApiVersions)).then_some(CapVersions);
        RewriteResponse::new(self.inner.call(request), rewrite)
    }
}

impl Rewrite for CapVersions {
    fn rewrite(self, response: &mut KafkaResponse) -> Result<(), FilterError> {
        // A broker that does not support the client's ApiVersions version answers in v0 with an error; that
        // body does not decode at the requested version, and it carries nothing to cap, so it passes as is.
        let needs_cap = match response.body() {
            Ok(ResponseKind::ApiVersions(body)) => {
                body.error_code == 0 && body.api_keys.iter().any(|v| cap(v).is_some())
            }
            _ => false,
        };
        if !needs_cap {
            return Ok(());
        }
        if let ResponseKind::ApiVersions(body) = response.body_mut()? {
            body.api_keys.retain_mut(|v| match cap(v) {
                None => true,
                Some(None) => false,
                Some(Some((min, max))) => {
                    v.min_version = min;
                    v.max_version = max;
                    true
                }
            });
        }
        Ok(())
    }
}

/// Apis whose request message decodes fewer versions than the protocol library's `ApiKey::valid_versions`
/// lists (kafka-protocol 0.18 lists OffsetCommit and OffsetFetch v10 and InitProducerId v6, whose request
/// types stop one version lower), with the highest version that decodes. Offered the listed maximum, a client
/// such as franz-go picks it, and a filter that must rewrite the request (a tenant's prefixes) cannot.
const REQUEST_DECODES_UP_TO: [(ApiKey, i16); 3] =
    [(ApiKey::OffsetCommit, 9), (ApiKey::OffsetFetch, 9), (ApiKey::InitProducerId, 5)];

/// The versions of `key` the gateway decodes in both directions.
pub fn decodable_versions(key: ApiKey) -> VersionRange {
    let listed = key.valid_versions();
    let max = REQUEST_DECODES_UP_TO.iter().find(|(k, _)| *k == key).map_or(listed.max, |(_, max)| listed.max.min(*max));
    VersionRange { min: listed.min, max }
}

/// `None`: leave as is. `Some(None)`: no version in common, drop it. `Some(Some(range))`: narrow to `range`.
fn cap(v: &franzgate_api::kafka_protocol::messages::api_versions_response::ApiVersion) -> Option<Option<(i16, i16)>> {
    let key = ApiKey::try_from(v.api_key).ok()?;
    let ours = decodable_versions(key);
    let (min, max) = (v.min_version.max(ours.min), v.max_version.min(ours.max));
    if (min, max) == (v.min_version, v.max_version) {
        return None;
    }
    Some((min <= max).then_some((min, max)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use franzgate_api::kafka_protocol::messages::ApiVersionsResponse;
    use franzgate_api::kafka_protocol::messages::api_versions_response::ApiVersion;

    fn version(key: i16, min: i16, max: i16) -> ApiVersion {
        ApiVersion::default().with_api_key(key).with_min_version(min).with_max_version(max)
    }

    #[test]
    fn versions_beyond_the_gateway_are_capped_and_unknown_apis_kept() {
        let ours = ApiKey::Metadata.valid_versions();
        let body = ApiVersionsResponse::default().with_api_keys(vec![
            version(ApiKey::Metadata as i16, 0, ours.max + 5),
            version(ApiKey::Produce as i16, 3, 3),
            version(9999, 0, 7),
        ]);
        let mut response = KafkaResponse::from_message(18, 3, 7, ResponseKind::ApiVersions(body)).expect("response");
        CapVersions.rewrite(&mut response).expect("rewrite");
        let Ok(ResponseKind::ApiVersions(body)) = response.body() else { panic!("not ApiVersions") };
        let got: Vec<_> = body.api_keys.iter().map(|v| (v.api_key, v.min_version, v.max_version)).collect();
        assert_eq!(got, vec![(3, 0, ours.max), (0, 3, 3), (9999, 0, 7)]);
    }

    /// A tripwire for the protocol library: every version advertised decodes in both directions (an empty body
    /// may fail to decode, but never as an unsupported version), and each exception is still needed.
    #[test]
    fn every_decodable_version_decodes_and_every_exception_is_needed() {
        use franzgate_api::kafka_protocol::messages::RequestKind;
        // `{:#}`: the library wraps the cause in a context line.
        fn unsupported(e: impl std::fmt::Display) -> bool {
            format!("{e:#}").contains("version not supported")
        }
        for key in ApiKey::iter() {
            let range = decodable_versions(key);
            for v in range.min..=range.max {
                let request = RequestKind::decode(key, &mut bytes::Bytes::new(), v).err().is_some_and(unsupported);
                let response = ResponseKind::decode(key, &mut bytes::Bytes::new(), v).err().is_some_and(unsupported);
                assert!(!request && !response, "{key:?} v{v} is advertised but does not decode");
            }
        }
        for (key, max) in REQUEST_DECODES_UP_TO {
            assert!(key.valid_versions().max > max, "{key:?}: the library caught up; drop the exception");
            let above = RequestKind::decode(key, &mut bytes::Bytes::new(), max + 1).err().is_some_and(unsupported);
            assert!(above, "{key:?} v{} decodes now; drop the exception", max + 1);
        }
    }

    #[test]
    fn an_api_with_no_common_version_is_not_advertised() {
        let ours = ApiKey::Fetch.valid_versions();
        let body = ApiVersionsResponse::default().with_api_keys(vec![version(1, ours.max + 1, ours.max + 3)]);
        let mut response = KafkaResponse::from_message(18, 3, 7, ResponseKind::ApiVersions(body)).expect("response");
        CapVersions.rewrite(&mut response).expect("rewrite");
        let Ok(ResponseKind::ApiVersions(body)) = response.body() else { panic!("not ApiVersions") };
        assert!(body.api_keys.is_empty());
    }
}
