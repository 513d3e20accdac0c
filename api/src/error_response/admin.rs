//! Admin APIs over configs, ACLs, quotas, SCRAM credentials and features.
//!
//! Most have no top-level error field: the admin clients complete one future per requested
//! resource / creation / filter / entry / user, so each needs its own result.

use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, AlterConfigsRequest, AlterConfigsResponse,
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, CreateAclsRequest, CreateAclsResponse,
    DeleteAclsRequest, DeleteAclsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, UpdateFeaturesRequest, UpdateFeaturesResponse, alter_client_quotas_response,
    alter_configs_response, alter_user_scram_credentials_response, create_acls_response, delete_acls_response,
    describe_configs_response, describe_user_scram_credentials_response, incremental_alter_configs_response,
    update_features_response,
};

/// Each resource comes back with the error and no configs.
pub(super) fn describe_configs(req: &DescribeConfigsRequest, error_code: i16) -> DescribeConfigsResponse {
    use describe_configs_response::DescribeConfigsResult;
    let results = req
        .resources
        .iter()
        .map(|resource| {
            build!(DescribeConfigsResult {
                error_code,
                error_message: None,
                resource_type: resource.resource_type,
                resource_name: resource.resource_name.clone(),
            })
        })
        .collect();
    build!(DescribeConfigsResponse { results })
}

pub(super) fn alter_configs(req: &AlterConfigsRequest, error_code: i16) -> AlterConfigsResponse {
    use alter_configs_response::AlterConfigsResourceResponse;
    let responses = req
        .resources
        .iter()
        .map(|resource| {
            build!(AlterConfigsResourceResponse {
                error_code,
                error_message: None,
                resource_type: resource.resource_type,
                resource_name: resource.resource_name.clone(),
            })
        })
        .collect();
    build!(AlterConfigsResponse { responses })
}

pub(super) fn incremental_alter_configs(
    req: &IncrementalAlterConfigsRequest,
    error_code: i16,
) -> IncrementalAlterConfigsResponse {
    use incremental_alter_configs_response::AlterConfigsResourceResponse;
    let responses = req
        .resources
        .iter()
        .map(|resource| {
            build!(AlterConfigsResourceResponse {
                error_code,
                error_message: None,
                resource_type: resource.resource_type,
                resource_name: resource.resource_name.clone(),
            })
        })
        .collect();
    build!(IncrementalAlterConfigsResponse { responses })
}

/// Results are positional: one per requested creation, in order.
pub(super) fn create_acls(req: &CreateAclsRequest, error_code: i16) -> CreateAclsResponse {
    use create_acls_response::AclCreationResult;
    let results = req.creations.iter().map(|_| build!(AclCreationResult { error_code, error_message: None })).collect();
    build!(CreateAclsResponse { results })
}

/// Results are positional: one per requested filter, in order, with no matching ACLs.
pub(super) fn delete_acls(req: &DeleteAclsRequest, error_code: i16) -> DeleteAclsResponse {
    use delete_acls_response::DeleteAclsFilterResult;
    let filter_results =
        req.filters.iter().map(|_| build!(DeleteAclsFilterResult { error_code, error_message: None })).collect();
    build!(DeleteAclsResponse { filter_results })
}

/// Each entry is identified by its entity, which is echoed.
pub(super) fn alter_client_quotas(req: &AlterClientQuotasRequest, error_code: i16) -> AlterClientQuotasResponse {
    use alter_client_quotas_response::{EntityData, EntryData};
    let entries = req
        .entries
        .iter()
        .map(|entry| {
            build!(EntryData {
                error_code,
                error_message: None,
                entity: entry
                    .entity
                    .iter()
                    .map(|entity| {
                        build!(EntityData {
                            entity_type: entity.entity_type.clone(),
                            entity_name: entity.entity_name.clone(),
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(AlterClientQuotasResponse { entries })
}

/// Top-level error plus one result per named user (`users: None` means all users).
pub(super) fn describe_user_scram_credentials(
    req: &DescribeUserScramCredentialsRequest,
    error_code: i16,
) -> DescribeUserScramCredentialsResponse {
    use describe_user_scram_credentials_response::DescribeUserScramCredentialsResult;
    let results = req
        .users
        .iter()
        .flatten()
        .map(|user| {
            build!(DescribeUserScramCredentialsResult { user: user.name.clone(), error_code, error_message: None })
        })
        .collect();
    build!(DescribeUserScramCredentialsResponse { error_code, error_message: None, results })
}

/// One result per distinct user across deletions and upsertions, as the broker answers.
pub(super) fn alter_user_scram_credentials(
    req: &AlterUserScramCredentialsRequest,
    error_code: i16,
) -> AlterUserScramCredentialsResponse {
    use alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
    let names = req
        .deletions
        .iter()
        .map(|deletion| &deletion.name)
        .chain(req.upsertions.iter().map(|upsertion| &upsertion.name));
    let mut results: Vec<AlterUserScramCredentialsResult> = Vec::new();
    for name in names {
        if !results.iter().any(|result| &result.user == name) {
            results.push(build!(AlterUserScramCredentialsResult {
                user: name.clone(),
                error_code,
                error_message: None,
            }));
        }
    }
    build!(AlterUserScramCredentialsResponse { results })
}

/// Top-level error, plus one result per requested feature where the version still has
/// per-feature results (v0-1).
pub(super) fn update_features(req: &UpdateFeaturesRequest, version: i16, error_code: i16) -> UpdateFeaturesResponse {
    use update_features_response::UpdatableFeatureResult;
    let results = if version <= 1 {
        req.feature_updates
            .iter()
            .map(|update| {
                build!(UpdatableFeatureResult { feature: update.feature.clone(), error_code, error_message: None })
            })
            .collect()
    } else {
        Vec::new()
    };
    build!(UpdateFeaturesResponse { error_code, error_message: None, results })
}
