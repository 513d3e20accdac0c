//! ApiVersions before authentication: answered by the gateway, since nothing may reach the backend yet.
//!
//! The answer is what the backend last advertised to the gateway's own connections (recorded per cluster),
//! narrowed to the versions the gateway can decode (`api_versions::decodable_versions`), plus the SASL apis the gateway itself serves. Before the
//! gateway has heard from the backend it offers its own ranges; clients pick versions within them and the
//! backend's real ranges arrive with the first authenticated connection.

use franzgate_api::kafka_protocol::messages::api_versions_response::ApiVersion;
use franzgate_api::kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};
use franzgate_api::topology::ApiVersionRange;
use franzgate_api::{FilterError, KafkaRequest, KafkaResponse};

/// UNSUPPORTED_VERSION: the client asked in an ApiVersions version the gateway cannot answer.
const UNSUPPORTED_VERSION: i16 = 35;

/// The gateway's answer to a pre-authentication ApiVersions.
pub fn pre_auth_api_versions(request: &mut KafkaRequest) -> Result<KafkaResponse, FilterError> {
    let ours = ApiKey::ApiVersions.valid_versions();
    if request.api_version() > ours.max {
        // As a broker does: answer in v0 with UNSUPPORTED_VERSION and our range, so the client retries lower.
        let body = ApiVersionsResponse::default().with_error_code(UNSUPPORTED_VERSION).with_api_keys(vec![version(
            ApiKey::ApiVersions as i16,
            ours.min,
            ours.max,
        )]);
        return KafkaResponse::from_message(
            ApiKey::ApiVersions as i16,
            0,
            request.correlation_id(),
            ResponseKind::ApiVersions(body),
        );
    }
    let backend = request.session.cluster.api_versions.load_full();
    let body = ApiVersionsResponse::default().with_api_keys(advertised(backend.as_deref().map(Vec::as_slice)));
    KafkaResponse::from_message(
        request.api_key_raw(),
        request.api_version(),
        request.correlation_id(),
        ResponseKind::ApiVersions(body),
    )
}

/// The ranges to advertise: the backend's (when known) within the gateway's, the gateway's SASL apis always.
pub fn advertised(backend: Option<&[ApiVersionRange]>) -> Vec<ApiVersion> {
    let mut out = Vec::new();
    for key in ApiKey::iter() {
        let ours = crate::api_versions::decodable_versions(key);
        let range = match (key, backend) {
            (ApiKey::SaslHandshake | ApiKey::SaslAuthenticate, _) | (_, None) => Some((ours.min, ours.max)),
            (_, Some(ranges)) => ranges
                .iter()
                .find(|r| r.api_key == key as i16)
                .map(|r| (r.min.max(ours.min), r.max.min(ours.max)))
                .filter(|(min, max)| min <= max),
        };
        if let Some((min, max)) = range {
            out.push(version(key as i16, min, max));
        }
    }
    out
}

fn version(api_key: i16, min: i16, max: i16) -> ApiVersion {
    ApiVersion::default().with_api_key(api_key).with_min_version(min).with_max_version(max)
}
