//! The JSON bodies of Lambda's control plane, field for field as Lambda names them.
//! Fields Lambda has and this engine has no use for (VPC, tracing, tags, ...) are accepted
//! and ignored in requests, and left out of responses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `Code` of CreateFunction, and the body of UpdateFunctionCode.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct FunctionCode {
    /// The zip, base64.
    pub zip_file: Option<String>,
    /// Code in S3: not served.
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    /// A container image: not served.
    pub image_uri: Option<String>,
    /// UpdateFunctionCode: publish a version after the update.
    #[serde(default)]
    pub publish: bool,
}

/// `Environment`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Environment {
    /// The variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// `EphemeralStorage`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EphemeralStorage {
    /// Size of `/tmp` in MB.
    pub size: u32,
}

/// `SnapStart`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SnapStart {
    /// `PublishedVersions` or `None`.
    pub apply_on: String,
}

/// The body of CreateFunction, and (without `Code`) of UpdateFunctionConfiguration.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct FunctionSettings {
    /// The name (CreateFunction only).
    pub function_name: Option<String>,
    /// `provided.al2023`, `provided.al2` or `provided`.
    pub runtime: Option<String>,
    /// Kept and shown; no permission is ever checked.
    pub role: Option<String>,
    /// `_HANDLER`.
    pub handler: Option<String>,
    /// The code (CreateFunction only).
    pub code: Option<FunctionCode>,
    /// A description.
    pub description: Option<String>,
    /// Seconds, 1-900.
    pub timeout: Option<u64>,
    /// MB, 128-10,240.
    pub memory_size: Option<u32>,
    /// Publish version 1 with the function (CreateFunction only).
    #[serde(default)]
    pub publish: bool,
    /// Environment variables.
    pub environment: Option<Environment>,
    /// `/tmp`'s size.
    pub ephemeral_storage: Option<EphemeralStorage>,
    /// `Zip` (the default) or `Image` (not served).
    pub package_type: Option<String>,
    /// `x86_64` only.
    pub architectures: Option<Vec<String>>,
    /// Layers by ARN: not served.
    pub layers: Option<Vec<String>>,
    /// SnapStart.
    pub snap_start: Option<SnapStart>,
}

/// `FunctionConfiguration`, as GetFunctionConfiguration and most function calls answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct FunctionConfiguration {
    pub function_name: String,
    pub function_arn: String,
    pub runtime: String,
    pub role: String,
    pub handler: String,
    pub code_size: u64,
    pub description: String,
    pub timeout: u64,
    pub memory_size: u32,
    pub last_modified: String,
    pub code_sha256: String,
    pub version: String,
    pub environment: Environment,
    pub state: &'static str,
    pub last_update_status: &'static str,
    pub package_type: &'static str,
    pub architectures: [&'static str; 1],
    pub ephemeral_storage: EphemeralStorage,
    pub snap_start: SnapStartResponse,
    pub revision_id: String,
}

/// `SnapStart` in a function's configuration.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SnapStartResponse {
    pub apply_on: &'static str,
    pub optimization_status: &'static str,
}

/// The body of CreateAlias and UpdateAlias.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AliasSettings {
    /// The alias name (CreateAlias).
    pub name: Option<String>,
    /// The version it points at.
    pub function_version: Option<String>,
    /// A description.
    pub description: Option<String>,
    /// Weighted routing.
    pub routing_config: Option<RoutingConfig>,
}

/// `RoutingConfig`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RoutingConfig {
    /// The second version and the share of invocations it gets.
    #[serde(default)]
    pub additional_version_weights: BTreeMap<String, f64>,
}

/// `AliasConfiguration`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AliasConfiguration {
    pub alias_arn: String,
    pub name: String,
    pub function_version: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_config: Option<RoutingConfig>,
    pub revision_id: String,
}

/// The body of PutFunctionConcurrency.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Concurrency {
    pub reserved_concurrent_executions: u32,
}

/// The body of PutProvisionedConcurrencyConfig.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ProvisionedConcurrency {
    pub provisioned_concurrent_executions: u32,
}

/// The body of PutFunctionEventInvokeConfig.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EventInvokeSettings {
    pub maximum_retry_attempts: Option<u32>,
    pub maximum_event_age_in_seconds: Option<u64>,
    pub destination_config: Option<serde_json::Value>,
}
