//! The control plane: functions, versions, aliases, concurrency and async settings, each
//! operation a thin translation between Lambda's JSON and a [`Service`] call.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_core::FunctionConfig;
use lambda_sched::{
    AliasInfo, AliasRouting, Destination, EventInvokeConfig, FunctionInfo, Version,
};
use serde_json::json;

use super::api_error::ApiError;
use super::catalog::VersionMeta;
use super::context::{Context, json_body};
use super::function_destination::FunctionDestination;
use super::message::{Request, Response};
use super::page::page;
use super::route::{qualified, split_function, target};
use super::shapes::{
    AliasConfiguration, AliasSettings, Concurrency, Environment, EphemeralStorage,
    EventInvokeSettings, FunctionCode, FunctionConfiguration, FunctionSettings,
    ProvisionedConcurrency, RoutingConfig, SnapStartResponse,
};
use super::time_format::iso8601;

/// The runtimes a zip may name: all of them run the zip's `bootstrap`.
const RUNTIMES: [&str; 3] = ["provided.al2023", "provided.al2", "provided"];

/// Lambda's `FunctionConfiguration` for a version the service holds.
fn configuration(context: &Context, info: &FunctionInfo) -> FunctionConfiguration {
    let meta = context.catalog.get(&info.name, info.version);
    let meta = meta.unwrap_or_else(|| VersionMeta {
        // A function registered through the Rust API, not through the gateway.
        runtime: "provided.al2023".into(),
        role: String::new(),
        code_sha256: String::new(),
        code_size: std::fs::metadata(info.config.code.path()).map_or(0, |m| m.len()),
        last_modified: iso8601(SystemTime::now()),
        description: String::new(),
        revision_id: String::new(),
    });
    let description = match info.version {
        Version::Latest => meta.description.clone(),
        Version::Published(_) => info.description.clone(),
    };
    FunctionConfiguration {
        function_name: info.name.clone(),
        function_arn: info.arn.clone(),
        runtime: meta.runtime,
        role: meta.role,
        handler: info.config.handler.clone(),
        code_size: meta.code_size,
        description,
        timeout: info.config.timeout.as_secs(),
        memory_size: info.config.memory_mb,
        last_modified: meta.last_modified,
        code_sha256: meta.code_sha256,
        version: info.version.to_string(),
        environment: Environment {
            variables: info.config.environment.clone(),
        },
        state: "Active",
        last_update_status: "Successful",
        package_type: "Zip",
        architectures: ["x86_64"],
        ephemeral_storage: EphemeralStorage {
            size: info.config.ephemeral_storage_mb,
        },
        snap_start: SnapStartResponse {
            apply_on: if info.config.snap_start {
                "PublishedVersions"
            } else {
                "None"
            },
            optimization_status: if info.config.snap_start { "On" } else { "Off" },
        },
        revision_id: meta.revision_id,
    }
}

/// Refuses what this engine cannot run: images, code in S3, other architectures, layers by
/// ARN, runtimes other than `provided`.
fn check_supported(settings: &FunctionSettings) -> Result<(), ApiError> {
    if settings.package_type.as_deref().is_some_and(|t| t != "Zip") {
        return Err(ApiError::invalid_parameter(
            "PackageType must be Zip: this engine runs a bootstrap from a zip, not images",
        ));
    }
    if let Some(arch) = &settings.architectures
        && arch.iter().any(|a| a != "x86_64")
    {
        return Err(ApiError::invalid_parameter(
            "Architectures must be [\"x86_64\"]: functions run on x86-64 micro-VMs",
        ));
    }
    if settings.layers.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(ApiError::invalid_parameter(
            "Layers by ARN are not served by this gateway; put the files in the function's zip",
        ));
    }
    if let Some(runtime) = &settings.runtime
        && !RUNTIMES.contains(&runtime.as_str())
    {
        return Err(ApiError::invalid_parameter(format!(
            "The runtime parameter of {runtime} is not supported: the engine runs a zip's \
             bootstrap, with runtime {}",
            RUNTIMES.join(", ")
        )));
    }
    Ok(())
}

/// The zip of a `Code` object.
fn zip_of(code: &FunctionCode) -> Result<&str, ApiError> {
    if code.s3_bucket.is_some() || code.image_uri.is_some() {
        return Err(ApiError::invalid_parameter(
            "code in S3 or a container image is not served by this gateway; send Code.ZipFile",
        ));
    }
    code.zip_file
        .as_deref()
        .ok_or_else(|| ApiError::invalid_parameter("Code.ZipFile is required"))
}

/// Applies the settings a request gives to `config`.
fn apply(
    context: &Context,
    config: &mut FunctionConfig,
    settings: &FunctionSettings,
) -> Result<(), ApiError> {
    if let Some(memory) = settings.memory_size {
        config.memory_mb = memory;
    }
    if let Some(timeout) = settings.timeout {
        config.timeout = Duration::from_secs(timeout.min(u64::from(u32::MAX)));
    }
    if let Some(environment) = &settings.environment {
        config.environment = environment.variables.clone();
    }
    if let Some(storage) = settings.ephemeral_storage {
        config.ephemeral_storage_mb = storage.size;
    }
    if let Some(handler) = &settings.handler {
        config.handler = handler.clone();
    }
    if let Some(snap) = &settings.snap_start {
        config.snap_start = match snap.apply_on.as_str() {
            "PublishedVersions" => true,
            "None" => false,
            other => {
                return Err(ApiError::invalid_parameter(format!(
                    "SnapStart.ApplyOn is PublishedVersions or None, not {other}"
                )));
            }
        };
    }
    if let Some(runtime) = &settings.runtime {
        config.base_image = match runtime.as_str() {
            "provided" => None,
            _ => context.base_image.clone(),
        };
    }
    config
        .validate()
        .map_err(|error| ApiError::invalid_parameter(error.to_string()))
}

/// The code storage left under the gateway's limit.
fn room(context: &Context) -> u64 {
    context
        .max_code_bytes
        .saturating_sub(context.catalog.total_code_size())
}

/// Publishes `$LATEST` and records the new version's particulars.
fn publish(context: &Context, name: &str, description: &str) -> Result<FunctionInfo, ApiError> {
    let info = context.service.publish_version(name, description)?;
    if context.catalog.get(name, info.version).is_none()
        && let Some(mut meta) = context.catalog.get(name, Version::Latest)
    {
        meta.touch();
        context.catalog.put(name, info.version, meta);
    }
    Ok(info)
}

/// `CreateFunction`.
pub(super) fn create_function(context: &Context, request: &Request) -> Result<Response, ApiError> {
    let settings: FunctionSettings = json_body(request)?;
    let reference = settings
        .function_name
        .as_deref()
        .ok_or_else(|| ApiError::invalid_parameter("FunctionName is required"))?;
    let (name, _) = split_function(reference);
    check_supported(&settings)?;
    let code = settings
        .code
        .as_ref()
        .ok_or_else(|| ApiError::invalid_parameter("Code is required"))?;
    let zip = zip_of(code)?;
    let mut config = FunctionConfig::new(&name, lambda_core::CodeLocation::Zip("".into()));
    config.base_image = context.base_image.clone();
    apply(context, &mut config, &settings)?;
    let stored = context.store.store(&name, zip, room(context))?;
    config.code = stored.location.clone();
    let info = match context.service.create_function(config) {
        Ok(info) => info,
        Err(error) => {
            context.store.remove(&stored.location);
            return Err(error.into());
        }
    };
    let mut meta = VersionMeta {
        runtime: settings
            .runtime
            .clone()
            .unwrap_or_else(|| RUNTIMES[0].to_string()),
        role: settings.role.clone().unwrap_or_default(),
        code_sha256: stored.sha256,
        code_size: stored.size,
        last_modified: String::new(),
        description: settings.description.clone().unwrap_or_default(),
        revision_id: String::new(),
    };
    meta.touch();
    context.catalog.put(&name, Version::Latest, meta);
    let shown = if settings.publish {
        publish(
            context,
            &name,
            settings.description.as_deref().unwrap_or(""),
        )?
    } else {
        info
    };
    Ok(Response::json(201, &configuration(context, &shown)))
}

/// `ListFunctions`.
pub(super) fn list_functions(context: &Context, request: &Request) -> Result<Response, ApiError> {
    // `FunctionVersion=ALL` lists every version of every function; otherwise `$LATEST`s.
    let all = match request.query_param("FunctionVersion").as_deref() {
        None => false,
        Some("ALL") => true,
        Some(other) => {
            return Err(ApiError::invalid_parameter(format!(
                "FunctionVersion {other:?} is not valid: the only value is ALL"
            )));
        }
    };
    let mut functions = Vec::new();
    for latest in context.service.list_functions() {
        if all {
            // A function deleted since the listing began is skipped.
            let versions = context.service.list_versions(&latest.name);
            for info in versions.iter().flatten() {
                functions.push(configuration(context, info));
            }
        } else {
            functions.push(configuration(context, &latest));
        }
    }
    Ok(Response::json(200, &page(request, "Functions", functions)?))
}

/// `GetFunction`.
pub(super) fn get_function(
    context: &Context,
    request: &Request,
    reference: &str,
) -> Result<Response, ApiError> {
    let (name, qualifier) = target(request, reference)?;
    let info = context
        .service
        .get_function(&qualified(&name, qualifier.as_deref()))?;
    let mut body = json!({
        "Configuration": configuration(context, &info),
        "Code": {
            "RepositoryType": "Local",
            "Location": format!("file://{}", info.config.code.path().display()),
        },
    });
    if let Some(reserved) = info.reserved_concurrency {
        body["Concurrency"] = json!({ "ReservedConcurrentExecutions": reserved });
    }
    Ok(Response::json(200, &body))
}

/// `GetFunctionConfiguration`.
pub(super) fn get_function_configuration(
    context: &Context,
    request: &Request,
    reference: &str,
) -> Result<Response, ApiError> {
    let (name, qualifier) = target(request, reference)?;
    let info = context
        .service
        .get_function(&qualified(&name, qualifier.as_deref()))?;
    Ok(Response::json(200, &configuration(context, &info)))
}

/// `DeleteFunction`: the function, or one version of it.
pub(super) fn delete_function(
    context: &Context,
    request: &Request,
    reference: &str,
) -> Result<Response, ApiError> {
    let (name, qualifier) = target(request, reference)?;
    let code = match &qualifier {
        Some(q) => Some(
            context
                .service
                .get_function(&qualified(&name, Some(q)))?
                .config
                .code,
        ),
        None => None,
    };
    context
        .service
        .delete_function(&name, qualifier.as_deref())?;
    context.catalog.remove(&name, qualifier.as_deref());
    match code {
        None => context.store.remove_function(&name),
        // A deleted version's zip goes unless $LATEST or another version runs it.
        Some(code) => {
            let versions = context.service.list_versions(&name)?;
            if !versions.iter().any(|v| v.config.code == code) {
                context.store.remove(&code);
            }
        }
    }
    Ok(Response::empty(204))
}

/// `UpdateFunctionConfiguration`.
pub(super) fn update_function_configuration(
    context: &Context,
    request: &Request,
    reference: &str,
) -> Result<Response, ApiError> {
    let settings: FunctionSettings = json_body(request)?;
    let (name, _) = split_function(reference);
    check_supported(&settings)?;
    let mut config = context.service.get_function(&name)?.config;
    apply(context, &mut config, &settings)?;
    let info = context.service.update_function_configuration(config)?;
    context.catalog.update_latest(&name, |meta| {
        if let Some(runtime) = &settings.runtime {
            meta.runtime = runtime.clone();
        }
        if let Some(role) = &settings.role {
            meta.role = role.clone();
        }
        if let Some(description) = &settings.description {
            meta.description = description.clone();
        }
    });
    Ok(Response::json(200, &configuration(context, &info)))
}

/// `UpdateFunctionCode`.
pub(super) fn update_function_code(
    context: &Context,
    request: &Request,
    reference: &str,
) -> Result<Response, ApiError> {
    let code: FunctionCode = json_body(request)?;
    let (name, _) = split_function(reference);
    // Refuse an unknown function before keeping its code.
    let previous = context.service.get_function(&name)?.config.code;
    // $LATEST's share of the storage is its to replace.
    let latest = context
        .catalog
        .get(&name, Version::Latest)
        .map_or(0, |meta| meta.code_size);
    let room = room(context).saturating_add(latest);
    let stored = context.store.store(&name, zip_of(&code)?, room)?;
    let info = match context
        .service
        .update_function_code(&name, stored.location.clone())
    {
        Ok(info) => info,
        Err(error) => {
            context.store.remove(&stored.location);
            return Err(error.into());
        }
    };
    // The previous zip goes unless a published version still runs it.
    let versions = context.service.list_versions(&name)?;
    if !versions.iter().any(|v| v.config.code == previous) {
        context.store.remove(&previous);
    }
    context.catalog.update_latest(&name, |meta| {
        meta.code_sha256 = stored.sha256.clone();
        meta.code_size = stored.size;
    });
    let shown = if code.publish {
        publish(context, &name, "")?
    } else {
        info
    };
    Ok(Response::json(200, &configuration(context, &shown)))
}

/// `PublishVersion`.
pub(super) fn publish_version(
    context: &Context,
    request: &Request,
    reference: &str,
) -> Result<Response, ApiError> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "PascalCase")]
    struct Body {
        description: Option<String>,
    }
    let body: Body = json_body(request)?;
    let (name, _) = split_function(reference);
    let info = publish(context, &name, body.description.as_deref().unwrap_or(""))?;
    Ok(Response::json(201, &configuration(context, &info)))
}

/// `ListVersionsByFunction`.
pub(super) fn list_versions(
    context: &Context,
    request: &Request,
    reference: &str,
) -> Result<Response, ApiError> {
    let (name, _) = split_function(reference);
    let versions: Vec<_> = context
        .service
        .list_versions(&name)?
        .iter()
        .map(|info| configuration(context, info))
        .collect();
    Ok(Response::json(200, &page(request, "Versions", versions)?))
}

fn parse_version(text: &str) -> Result<Version, ApiError> {
    Version::parse(text).ok_or_else(|| {
        ApiError::invalid_parameter(format!(
            "FunctionVersion {text:?} is neither $LATEST nor a version number"
        ))
    })
}

/// The service's routing from `RoutingConfig`: at most one additional version.
fn routing(config: &RoutingConfig) -> Result<Option<AliasRouting>, ApiError> {
    let mut weights = config.additional_version_weights.iter();
    let Some((version, weight)) = weights.next() else {
        return Ok(None);
    };
    if weights.next().is_some() {
        return Err(ApiError::invalid_parameter(
            "RoutingConfig.AdditionalVersionWeights holds at most one version",
        ));
    }
    let Ok(Version::Published(version)) = parse_version(version) else {
        return Err(ApiError::invalid_parameter(format!(
            "RoutingConfig names {version:?}; it takes a published version number"
        )));
    };
    Ok(Some(AliasRouting {
        version,
        weight: *weight,
    }))
}

fn alias_configuration(context: &Context, function: &str, alias: &AliasInfo) -> AliasConfiguration {
    AliasConfiguration {
        alias_arn: alias.arn.clone(),
        name: alias.name.clone(),
        function_version: alias.function_version.to_string(),
        description: context.catalog.alias_description(function, &alias.name),
        routing_config: alias.routing.map(|r| RoutingConfig {
            additional_version_weights: [(r.version.to_string(), r.weight)].into(),
        }),
        revision_id: String::new(),
    }
}

/// `CreateAlias`.
pub(super) fn create_alias(
    context: &Context,
    request: &Request,
    reference: &str,
) -> Result<Response, ApiError> {
    let settings: AliasSettings = json_body(request)?;
    let (name, _) = split_function(reference);
    let alias = settings
        .name
        .as_deref()
        .ok_or_else(|| ApiError::invalid_parameter("Name is required"))?;
    let version = parse_version(
        settings
            .function_version
            .as_deref()
            .ok_or_else(|| ApiError::invalid_parameter("FunctionVersion is required"))?,
    )?;
    let routing = match &settings.routing_config {
        Some(config) => routing(config)?,
        None => None,
    };
    let info = context
        .service
        .create_alias(&name, alias, version, routing)?;
    context
        .catalog
        .set_alias_description(&name, alias, settings.description.clone());
    Ok(Response::json(
        201,
        &alias_configuration(context, &name, &info),
    ))
}

/// `UpdateAlias`: what the body leaves out stays as it was.
pub(super) fn update_alias(
    context: &Context,
    request: &Request,
    reference: &str,
    alias: &str,
) -> Result<Response, ApiError> {
    let settings: AliasSettings = json_body(request)?;
    let (name, _) = split_function(reference);
    let current = context.service.get_alias(&name, alias)?;
    let version = match settings.function_version.as_deref() {
        Some(text) => parse_version(text)?,
        None => current.function_version,
    };
    let routing = match &settings.routing_config {
        Some(config) => routing(config)?,
        None => current.routing,
    };
    let info = context
        .service
        .update_alias(&name, alias, version, routing)?;
    if settings.description.is_some() {
        context
            .catalog
            .set_alias_description(&name, alias, settings.description.clone());
    }
    Ok(Response::json(
        200,
        &alias_configuration(context, &name, &info),
    ))
}

/// `GetAlias`.
pub(super) fn get_alias(
    context: &Context,
    reference: &str,
    alias: &str,
) -> Result<Response, ApiError> {
    let (name, _) = split_function(reference);
    let info = context.service.get_alias(&name, alias)?;
    Ok(Response::json(
        200,
        &alias_configuration(context, &name, &info),
    ))
}

/// `ListAliases`.
pub(super) fn list_aliases(
    context: &Context,
    request: &Request,
    reference: &str,
) -> Result<Response, ApiError> {
    let (name, _) = split_function(reference);
    // `FunctionVersion`: only the aliases that point at that version.
    let version = request
        .query_param("FunctionVersion")
        .map(|v| parse_version(&v))
        .transpose()?;
    let aliases: Vec<_> = context
        .service
        .list_aliases(&name)?
        .iter()
        .filter(|alias| version.is_none_or(|v| alias.function_version == v))
        .map(|alias| alias_configuration(context, &name, alias))
        .collect();
    Ok(Response::json(200, &page(request, "Aliases", aliases)?))
}

/// `DeleteAlias`.
pub(super) fn delete_alias(
    context: &Context,
    reference: &str,
    alias: &str,
) -> Result<Response, ApiError> {
    let (name, _) = split_function(reference);
    context.service.delete_alias(&name, alias)?;
    context.catalog.set_alias_description(&name, alias, None);
    Ok(Response::empty(204))
}

/// `PutFunctionConcurrency`.
pub(super) fn put_concurrency(
    context: &Context,
    request: &Request,
    reference: &str,
) -> Result<Response, ApiError> {
    let body: Concurrency = json_body(request)?;
    let (name, _) = split_function(reference);
    context
        .service
        .put_function_concurrency(&name, body.reserved_concurrent_executions)?;
    Ok(Response::json(
        200,
        &json!({ "ReservedConcurrentExecutions": body.reserved_concurrent_executions }),
    ))
}

/// `DeleteFunctionConcurrency`.
pub(super) fn delete_concurrency(context: &Context, reference: &str) -> Result<Response, ApiError> {
    let (name, _) = split_function(reference);
    context.service.delete_function_concurrency(&name)?;
    Ok(Response::empty(204))
}

/// `GetFunctionConcurrency`.
pub(super) fn get_concurrency(context: &Context, reference: &str) -> Result<Response, ApiError> {
    let (name, _) = split_function(reference);
    let info = context.service.get_function(&name)?;
    let body = match info.reserved_concurrency {
        Some(n) => json!({ "ReservedConcurrentExecutions": n }),
        None => json!({}),
    };
    Ok(Response::json(200, &body))
}

fn required_qualifier(request: &Request, reference: &str) -> Result<(String, String), ApiError> {
    let (name, qualifier) = target(request, reference)?;
    let qualifier = qualifier.ok_or_else(|| {
        ApiError::invalid_parameter("Qualifier is required: a published version or an alias")
    })?;
    Ok((name, qualifier))
}

/// `PutProvisionedConcurrencyConfig`: the environments are made by the service's next
/// maintenance pass, so the answer is `IN_PROGRESS`, as Lambda's is.
pub(super) fn put_provisioned(
    context: &Context,
    request: &Request,
    reference: &str,
) -> Result<Response, ApiError> {
    let body: ProvisionedConcurrency = json_body(request)?;
    let (name, qualifier) = required_qualifier(request, reference)?;
    let count = body.provisioned_concurrent_executions;
    context
        .service
        .put_provisioned_concurrency(&name, &qualifier, count)?;
    Ok(Response::json(
        202,
        &json!({
            "RequestedProvisionedConcurrentExecutions": count,
            "AvailableProvisionedConcurrentExecutions": 0,
            "AllocatedProvisionedConcurrentExecutions": 0,
            "Status": "IN_PROGRESS",
            "LastModified": iso8601(SystemTime::now()),
        }),
    ))
}

/// `DeleteProvisionedConcurrencyConfig`.
pub(super) fn delete_provisioned(
    context: &Context,
    request: &Request,
    reference: &str,
) -> Result<Response, ApiError> {
    let (name, qualifier) = required_qualifier(request, reference)?;
    context
        .service
        .delete_provisioned_concurrency(&name, &qualifier)?;
    Ok(Response::empty(204))
}

/// The destinations a `DestinationConfig` names (`OnSuccess`, `OnFailure`), as functions.
fn destinations(
    context: &Context,
    config: Option<&serde_json::Value>,
) -> Result<[Option<Arc<dyn Destination>>; 2], ApiError> {
    let mut found: [Option<Arc<dyn Destination>>; 2] = [None, None];
    let Some(config) = config else {
        return Ok(found);
    };
    for (slot, key) in found.iter_mut().zip(["OnSuccess", "OnFailure"]) {
        if let Some(arn) = config[key]["Destination"]
            .as_str()
            .filter(|d| !d.is_empty())
        {
            let weak = Arc::downgrade(&context.service);
            *slot = Some(Arc::new(FunctionDestination::new(weak, arn)?));
        }
    }
    Ok(found)
}

/// `PutFunctionEventInvokeConfig`: retries, maximum age and function destinations.
pub(super) fn put_event_invoke_config(
    context: &Context,
    request: &Request,
    reference: &str,
) -> Result<Response, ApiError> {
    let body: EventInvokeSettings = json_body(request)?;
    let (name, qualifier) = target(request, reference)?;
    let retries = body.maximum_retry_attempts.unwrap_or(2);
    if retries > 2 {
        return Err(ApiError::invalid_parameter(format!(
            "MaximumRetryAttempts is 0-2, not {retries}"
        )));
    }
    let age = body.maximum_event_age_in_seconds.unwrap_or(6 * 3600);
    if !(60..=6 * 3600).contains(&age) {
        return Err(ApiError::invalid_parameter(format!(
            "MaximumEventAgeInSeconds is 60-21600, not {age}"
        )));
    }
    let [on_success, on_failure] = destinations(context, body.destination_config.as_ref())?;
    let mut config = EventInvokeConfig::default()
        .with_maximum_retry_attempts(retries)
        .with_maximum_event_age(Duration::from_secs(age));
    config.on_success = on_success;
    config.on_failure = on_failure;
    context
        .service
        .put_event_invoke_config(&name, qualifier.as_deref(), config)?;
    let info = context
        .service
        .get_function(&qualified(&name, qualifier.as_deref()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let destination_config = body.destination_config.unwrap_or_else(|| json!({}));
    Ok(Response::json(
        200,
        &json!({
            "LastModified": now,
            "FunctionArn": info.arn,
            "MaximumRetryAttempts": retries,
            "MaximumEventAgeInSeconds": age,
            "DestinationConfig": destination_config,
        }),
    ))
}

/// `GetAccountSettings`.
pub(super) fn account_settings(context: &Context) -> Result<Response, ApiError> {
    let functions = context.service.list_functions();
    let limit = context.service.config().limits.account_concurrency;
    let reserved: u32 = functions
        .iter()
        .filter_map(|f| f.reserved_concurrency)
        .sum();
    Ok(Response::json(
        200,
        &json!({
            "AccountLimit": {
                "TotalCodeSize": context.max_code_bytes,
                "CodeSizeUnzipped": 250u64 * 1024 * 1024,
                "CodeSizeZipped": super::code_store::MAX_ZIP_BYTES,
                "ConcurrentExecutions": limit,
                "UnreservedConcurrentExecutions": limit.saturating_sub(reserved),
            },
            "AccountUsage": {
                "TotalCodeSize": context.catalog.total_code_size(),
                "FunctionCount": functions.len(),
            },
        }),
    ))
}
