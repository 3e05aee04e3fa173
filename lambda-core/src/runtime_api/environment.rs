//! The environment variables Lambda gives a function's runtime.

use crate::config::FunctionConfig;

/// Region used when the function's own variables do not name one in `AWS_REGION`.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The account id in the ARNs this engine makes up (the one the Runtime Interface Emulator
/// uses).
pub const ACCOUNT_ID: &str = "012345678912";

/// Where a function's code is, as the runtime is told (`LAMBDA_TASK_ROOT`).
pub const TASK_ROOT: &str = "/var/task";

/// What tells one environment of a function from another in its variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentInfo {
    /// `AWS_LAMBDA_FUNCTION_VERSION`: `$LATEST` or a published version number.
    pub function_version: String,
    /// `AWS_LAMBDA_LOG_STREAM_NAME`; see [`log_stream_name`].
    pub log_stream_name: String,
    /// `LAMBDA_TASK_ROOT`: [`TASK_ROOT`] in a micro-VM; a backend without its own file system
    /// names the directory holding the code.
    pub task_root: String,
}

impl EnvironmentInfo {
    /// Info for an environment of `$LATEST` with the given log stream name.
    pub fn new(log_stream_name: impl Into<String>) -> Self {
        EnvironmentInfo {
            function_version: "$LATEST".to_string(),
            log_stream_name: log_stream_name.into(),
            task_root: TASK_ROOT.to_string(),
        }
    }

    /// Sets the function version.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.function_version = version.into();
        self
    }

    /// Sets `LAMBDA_TASK_ROOT`.
    pub fn with_task_root(mut self, task_root: impl Into<String>) -> Self {
        self.task_root = task_root.into();
        self
    }
}

/// The region of `config`: its own `AWS_REGION` variable, else [`DEFAULT_REGION`].
pub fn region(config: &FunctionConfig) -> &str {
    config
        .environment
        .get("AWS_REGION")
        .map_or(DEFAULT_REGION, String::as_str)
}

/// The function's unqualified ARN, `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
pub fn function_arn(config: &FunctionConfig) -> String {
    format!(
        "arn:aws:lambda:{}:{ACCOUNT_ID}:function:{}",
        region(config),
        config.name
    )
}

/// A log stream name in Lambda's shape, `YYYY/MM/DD/[VERSION]INSTANCE`, for an environment
/// started at `unix_seconds` (UTC). `instance` tells environments apart (Lambda uses 32 hex
/// digits).
pub fn log_stream_name(unix_seconds: u64, version: &str, instance: &str) -> String {
    let (year, month, day) = crate::calendar::civil_date(unix_seconds / 86_400);
    format!("{year:04}/{month:02}/{day:02}/[{version}]{instance}")
}

/// The variables a function's runtime starts with, sorted by name: Lambda's reserved
/// variables for a custom runtime (`AWS_LAMBDA_FUNCTION_NAME`, `..._VERSION`,
/// `..._MEMORY_SIZE`, `AWS_LAMBDA_LOG_GROUP_NAME` = `/aws/lambda/NAME`,
/// `AWS_LAMBDA_LOG_STREAM_NAME`, `AWS_LAMBDA_RUNTIME_API` = `runtime_api_addr` (left out
/// when it is `None`: a one-shot stdio function has no Runtime API),
/// `AWS_LAMBDA_INITIALIZATION_TYPE`, `AWS_REGION`, `AWS_DEFAULT_REGION`, `LAMBDA_TASK_ROOT`,
/// `LAMBDA_RUNTIME_DIR`, `_HANDLER`), the unreserved defaults (`TZ=:UTC`, `PATH`, `LANG`,
/// `LD_LIBRARY_PATH`) and the function's own variables.
///
/// The function's variables override the unreserved defaults and `AWS_REGION` (there is no
/// other way to choose a region here), but never the reserved ones, as in Lambda.
pub fn runtime_environment(
    config: &FunctionConfig,
    runtime_api_addr: Option<&str>,
    info: &EnvironmentInfo,
) -> Vec<(String, String)> {
    let mut vars: std::collections::BTreeMap<String, String> = [
        ("TZ", ":UTC"),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin"),
        ("LANG", "en_US.UTF-8"),
        (
            "LD_LIBRARY_PATH",
            "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect();
    vars.extend(config.environment.clone());
    let region = region(config).to_string();
    let reserved = [
        ("AWS_LAMBDA_FUNCTION_NAME", config.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", info.function_version.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            config.memory_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", config.name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", info.log_stream_name.clone()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
        ("AWS_REGION", region.clone()),
        ("AWS_DEFAULT_REGION", region),
        ("LAMBDA_TASK_ROOT", info.task_root.clone()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".to_string()),
        ("_HANDLER", config.handler.clone()),
    ];
    for (key, value) in reserved {
        vars.insert(key.to_string(), value);
    }
    match runtime_api_addr {
        Some(addr) => vars.insert("AWS_LAMBDA_RUNTIME_API".to_string(), addr.to_string()),
        None => vars.remove("AWS_LAMBDA_RUNTIME_API"),
    };
    vars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CodeLocation;

    fn config() -> FunctionConfig {
        FunctionConfig::new("greeter", CodeLocation::Executable("/bin/true".into()))
            .with_memory_mb(256)
            .with_handler("main.handler")
    }

    fn get<'a>(vars: &'a [(String, String)], key: &str) -> Option<&'a str> {
        vars.iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn standard_variables() {
        let info = EnvironmentInfo::new("2024/01/02/[$LATEST]abc");
        let vars = runtime_environment(&config(), Some("127.0.0.1:9001"), &info);
        let expected = [
            ("AWS_LAMBDA_FUNCTION_NAME", "greeter"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/greeter"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2024/01/02/[$LATEST]abc"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_REGION", "us-east-1"),
            ("LAMBDA_TASK_ROOT", "/var/task"),
            ("_HANDLER", "main.handler"),
            ("TZ", ":UTC"),
            ("LANG", "en_US.UTF-8"),
            ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin"),
        ];
        for (key, value) in expected {
            assert_eq!(get(&vars, key), Some(value), "{key}");
        }
        let mut sorted = vars.clone();
        sorted.sort();
        assert_eq!(vars, sorted);
    }

    #[test]
    fn own_variables_override_defaults_and_region_but_not_reserved() {
        let config = config()
            .with_env("AWS_REGION", "eu-west-1")
            .with_env("TZ", "Europe/Paris")
            .with_env("AWS_LAMBDA_FUNCTION_NAME", "spoofed")
            .with_env("GREETING", "hi");
        let info = EnvironmentInfo::new("s")
            .with_version("7")
            .with_task_root("/srv/code");
        let vars = runtime_environment(&config, Some("a:1"), &info);
        assert_eq!(get(&vars, "AWS_REGION"), Some("eu-west-1"));
        assert_eq!(get(&vars, "AWS_DEFAULT_REGION"), Some("eu-west-1"));
        assert_eq!(get(&vars, "TZ"), Some("Europe/Paris"));
        assert_eq!(get(&vars, "AWS_LAMBDA_FUNCTION_NAME"), Some("greeter"));
        assert_eq!(get(&vars, "AWS_LAMBDA_FUNCTION_VERSION"), Some("7"));
        assert_eq!(get(&vars, "LAMBDA_TASK_ROOT"), Some("/srv/code"));
        assert_eq!(get(&vars, "GREETING"), Some("hi"));
        assert_eq!(
            vars.iter().filter(|(key, _)| key == "AWS_REGION").count(),
            1
        );
    }

    #[test]
    fn arn_and_log_stream() {
        assert_eq!(
            function_arn(&config()),
            "arn:aws:lambda:us-east-1:012345678912:function:greeter"
        );
        assert_eq!(log_stream_name(0, "$LATEST", "x"), "1970/01/01/[$LATEST]x");
        // 2024-02-29T12:00:00Z, a leap day.
        assert_eq!(
            log_stream_name(1_709_208_000, "3", "ab"),
            "2024/02/29/[3]ab"
        );
        // 2000-03-01T00:00:00Z.
        assert_eq!(log_stream_name(951_868_800, "1", ""), "2000/03/01/[1]");
    }

    #[test]
    fn without_a_runtime_api_the_variable_is_absent() {
        let config = config().with_env("AWS_LAMBDA_RUNTIME_API", "mine:1");
        let info = EnvironmentInfo::new("stream");
        let vars = runtime_environment(&config, None, &info);
        assert!(vars.iter().all(|(key, _)| key != "AWS_LAMBDA_RUNTIME_API"));
        assert!(
            vars.iter()
                .any(|(key, _)| key == "AWS_LAMBDA_FUNCTION_NAME")
        );
    }
}
