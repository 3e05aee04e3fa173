//! The guest's environment variables.

use lambda_core::FunctionConfig;

/// The guest's environment variables: Lambda's, then the function's own.
pub(super) fn guest_environment(config: &FunctionConfig, runtime_api: Option<&str>) -> Vec<String> {
    use lambda_core::runtime_api::{EnvironmentInfo, log_stream_name, runtime_environment};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let instance = lambda_core::new_request_id().replace('-', "");
    let info = EnvironmentInfo::new(log_stream_name(now, "$LATEST", &instance));
    runtime_environment(config, runtime_api, &info)
        .into_iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect()
}
