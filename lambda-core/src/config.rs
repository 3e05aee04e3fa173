//! A function's configuration and its validation against Lambda's limits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::limits;

/// Where a function's code lives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CodeLocation {
    /// An x86-64 Linux executable: static (non-PIE or static-PIE), or dynamically linked for
    /// a function with a base image ([`FunctionConfig::base_image`]).
    Executable(PathBuf),
    /// A zip archive holding the executable under the name `bootstrap`, as Lambda's
    /// `provided` runtimes package it.
    Zip(PathBuf),
}

impl CodeLocation {
    /// The file this location names.
    pub fn path(&self) -> &std::path::Path {
        match self {
            CodeLocation::Executable(path) | CodeLocation::Zip(path) => path,
        }
    }
}

/// How a function talks to the engine.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Contract {
    /// Lambda's custom-runtime protocol: the program reads `AWS_LAMBDA_RUNTIME_API` and
    /// fetches events from the Runtime API 2018-06-01. Init runs once; the environment then
    /// serves invocation after invocation (warm reuse).
    #[default]
    RuntimeApi,
    /// One-shot stdio: each invocation is a fresh run of the program with the event on stdin,
    /// the response on stdout and the log on stderr; exit status 0 means success.
    Stdio,
}

/// Everything the engine needs to know to run a function.
///
/// Build one with [`FunctionConfig::new`] and the `with_*` methods; every field starts at
/// Lambda's default. [`FunctionConfig::validate`] checks the whole configuration against
/// [`limits`]; backends and the scheduler call it before using a configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FunctionConfig {
    /// The function's name: 1-64 characters of letters, digits, `-` and `_`.
    pub name: String,
    /// The function's code.
    pub code: CodeLocation,
    /// Memory size in MB, 128-10,240. The guest gets exactly this much memory.
    pub memory_mb: u32,
    /// Longest an invocation may run, 1-900 s.
    pub timeout: Duration,
    /// The function's own environment variables, at most 4 KB in total.
    pub environment: BTreeMap<String, String>,
    /// Size of the writable `/tmp`, in MB, 512-10,240.
    pub ephemeral_storage_mb: u32,
    /// The `_HANDLER` value passed to the runtime.
    pub handler: String,
    /// How the function receives events and returns results.
    pub contract: Contract,
    /// SnapStart: environments start from a snapshot taken once after the function's first
    /// Init (per version and configuration), on backends that can snapshot; others, and
    /// functions that cannot be snapshotted, start with an Init as usual.
    pub snap_start: bool,
    /// A base image: a host directory the guest sees, read-only, as its `/` (apart from
    /// `/var/task` and `/tmp`), holding what a dynamically linked program needs (the dynamic
    /// linker, glibc, a shell, an interpreter), as Lambda's `provided.al2023` runtime holds
    /// Amazon Linux. `None` runs static programs only. The micro-VM backend uses it; the
    /// process backend runs programs with the host's own libraries.
    #[serde(default)]
    pub base_image: Option<PathBuf>,
    /// Layers: up to 5 zip archives or host directories whose files appear, read-only,
    /// under `/opt`, merged in order (a later layer's file wins), as Lambda's layers do. The
    /// function's code and its layers may hold 250 MB unzipped together.
    #[serde(default)]
    pub layers: Vec<PathBuf>,
}

impl FunctionConfig {
    /// A configuration with Lambda's defaults: 128 MB, 3 s, no environment, 512 MB `/tmp`,
    /// the Runtime API contract.
    pub fn new(name: impl Into<String>, code: CodeLocation) -> Self {
        FunctionConfig {
            name: name.into(),
            code,
            memory_mb: limits::DEFAULT_MEMORY_MB,
            timeout: limits::DEFAULT_TIMEOUT,
            environment: BTreeMap::new(),
            ephemeral_storage_mb: limits::DEFAULT_EPHEMERAL_STORAGE_MB,
            handler: "bootstrap".to_string(),
            contract: Contract::default(),
            snap_start: false,
            base_image: None,
            layers: Vec::new(),
        }
    }

    /// Sets the code location.
    pub fn with_code(mut self, code: CodeLocation) -> Self {
        self.code = code;
        self
    }

    /// Sets the memory size in MB.
    pub fn with_memory_mb(mut self, memory_mb: u32) -> Self {
        self.memory_mb = memory_mb;
        self
    }

    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds one environment variable.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.environment.insert(key.into(), value.into());
        self
    }

    /// Sets the size of `/tmp` in MB.
    pub fn with_ephemeral_storage_mb(mut self, size_mb: u32) -> Self {
        self.ephemeral_storage_mb = size_mb;
        self
    }

    /// Sets the `_HANDLER` value.
    pub fn with_handler(mut self, handler: impl Into<String>) -> Self {
        self.handler = handler.into();
        self
    }

    /// Sets the contract (Runtime API or one-shot stdio).
    pub fn with_contract(mut self, contract: Contract) -> Self {
        self.contract = contract;
        self
    }

    /// Turns SnapStart on or off (see [`FunctionConfig::snap_start`]).
    pub fn with_snap_start(mut self, snap_start: bool) -> Self {
        self.snap_start = snap_start;
        self
    }

    /// Sets the base image (see [`FunctionConfig::base_image`]).
    pub fn with_base_image(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_image = Some(dir.into());
        self
    }

    /// Adds a layer (see [`FunctionConfig::layers`]): a zip archive, or a directory.
    pub fn with_layer(mut self, layer: impl Into<PathBuf>) -> Self {
        self.layers.push(layer.into());
        self
    }

    /// Guest memory size in bytes.
    pub fn memory_bytes(&self) -> u64 {
        u64::from(self.memory_mb) << 20
    }

    /// The vCPUs the function's threads run on at once, following its memory size as Lambda's
    /// CPU share does: 1 up to 1,769 MB, one more per further 1,769 MB, at most 6.
    pub fn vcpus(&self) -> u32 {
        limits::vcpus_for_memory_mb(self.memory_mb)
    }

    /// Checks every field against Lambda's limits, reporting the first that is out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_name(&self.name)?;
        if !(limits::MIN_MEMORY_MB..=limits::MAX_MEMORY_MB).contains(&self.memory_mb) {
            return Err(ConfigError::MemorySize(self.memory_mb));
        }
        if self.timeout < limits::MIN_TIMEOUT || self.timeout > limits::MAX_TIMEOUT {
            return Err(ConfigError::Timeout(self.timeout));
        }
        if !(limits::MIN_EPHEMERAL_STORAGE_MB..=limits::MAX_EPHEMERAL_STORAGE_MB)
            .contains(&self.ephemeral_storage_mb)
        {
            return Err(ConfigError::EphemeralStorage(self.ephemeral_storage_mb));
        }
        let mut total = 0;
        for (key, value) in &self.environment {
            validate_env_key(key)?;
            if value.contains('\0') {
                return Err(ConfigError::EnvironmentValue(key.clone()));
            }
            total += key.len() + value.len();
        }
        if total > limits::MAX_ENVIRONMENT_BYTES {
            return Err(ConfigError::EnvironmentTooLarge(total));
        }
        if self.handler.len() > 128 || self.handler.contains('\0') {
            return Err(ConfigError::Handler);
        }
        if self.layers.len() > limits::MAX_LAYERS {
            return Err(ConfigError::TooManyLayers(self.layers.len()));
        }
        Ok(())
    }
}

fn validate_name(name: &str) -> Result<(), ConfigError> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if name.is_empty() || name.len() > limits::MAX_FUNCTION_NAME_LEN || !valid_chars {
        return Err(ConfigError::Name(name.to_string()));
    }
    Ok(())
}

fn validate_env_key(key: &str) -> Result<(), ConfigError> {
    let mut chars = key.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_well || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ConfigError::EnvironmentKey(key.to_string()));
    }
    Ok(())
}

/// Why a [`FunctionConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The name is empty, too long or has characters other than letters, digits, `-`, `_`.
    #[error("invalid function name {0:?}: use 1-64 characters of letters, digits, '-' and '_'")]
    Name(String),
    /// Memory outside 128-10,240 MB.
    #[error("memory size {0} MB is out of range: choose 128-10240 MB")]
    MemorySize(u32),
    /// Timeout outside 1-900 s.
    #[error("timeout {0:?} is out of range: choose 1-900 seconds")]
    Timeout(Duration),
    /// `/tmp` size outside 512-10,240 MB.
    #[error("ephemeral storage {0} MB is out of range: choose 512-10240 MB")]
    EphemeralStorage(u32),
    /// An environment variable name that is not `[A-Za-z][A-Za-z0-9_]*`.
    #[error(
        "invalid environment variable name {0:?}: start with a letter, then letters, digits and '_'"
    )]
    EnvironmentKey(String),
    /// An environment variable value with a NUL byte.
    #[error("environment variable {0:?} has a NUL byte in its value")]
    EnvironmentValue(String),
    /// Environment variables over 4 KB in total.
    #[error("environment variables take {0} bytes; the limit is 4096 bytes (keys plus values)")]
    EnvironmentTooLarge(usize),
    /// A handler over 128 bytes or with a NUL byte.
    #[error("the handler must be at most 128 bytes without NUL bytes")]
    Handler,
    /// More than 5 layers.
    #[error("the function has {0} layers; at most 5 are allowed")]
    TooManyLayers(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> FunctionConfig {
        FunctionConfig::new("hello", CodeLocation::Executable("/bin/true".into()))
    }

    #[test]
    fn defaults_are_lambdas_and_valid() {
        let config = config();
        assert_eq!(config.memory_mb, 128);
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert_eq!(config.ephemeral_storage_mb, 512);
        assert_eq!(config.memory_bytes(), 128 << 20);
        assert_eq!(config.vcpus(), 1);
        let sized = |mb| config.clone().with_memory_mb(mb).vcpus();
        assert_eq!(
            [
                sized(1_769),
                sized(1_770),
                sized(3_538),
                sized(3_539),
                sized(10_240)
            ],
            [1, 2, 2, 3, 6]
        );
        config.validate().unwrap();
    }

    #[test]
    fn memory_bounds() {
        assert_eq!(
            config().with_memory_mb(127).validate(),
            Err(ConfigError::MemorySize(127))
        );
        assert_eq!(
            config().with_memory_mb(10_241).validate(),
            Err(ConfigError::MemorySize(10_241))
        );
        config().with_memory_mb(10_240).validate().unwrap();
    }

    #[test]
    fn timeout_bounds() {
        let too_long = Duration::from_secs(901);
        assert_eq!(
            config().with_timeout(too_long).validate(),
            Err(ConfigError::Timeout(too_long))
        );
        let too_short = Duration::from_millis(999);
        assert_eq!(
            config().with_timeout(too_short).validate(),
            Err(ConfigError::Timeout(too_short))
        );
        config()
            .with_timeout(Duration::from_secs(900))
            .validate()
            .unwrap();
    }

    #[test]
    fn names() {
        for bad in ["", "has space", "slash/", &"x".repeat(65)] {
            assert!(matches!(
                FunctionConfig::new(bad, CodeLocation::Zip("f.zip".into())).validate(),
                Err(ConfigError::Name(_))
            ));
        }
        FunctionConfig::new("My-func_2", CodeLocation::Zip("f.zip".into()))
            .validate()
            .unwrap();
    }

    #[test]
    fn environment_limits() {
        assert!(matches!(
            config().with_env("1BAD", "x").validate(),
            Err(ConfigError::EnvironmentKey(_))
        ));
        assert!(matches!(
            config().with_env("KEY", "a\0b").validate(),
            Err(ConfigError::EnvironmentValue(_))
        ));
        let big = config().with_env("BIG", "x".repeat(4094));
        assert_eq!(big.validate(), Err(ConfigError::EnvironmentTooLarge(4097)));
        let layered = (0..6).fold(config(), |config, n| {
            config.with_layer(format!("/l{n}.zip"))
        });
        assert_eq!(layered.validate(), Err(ConfigError::TooManyLayers(6)));
        config()
            .with_env("BIG", "x".repeat(4093))
            .validate()
            .unwrap();
    }

    #[test]
    fn ephemeral_storage_bounds() {
        assert_eq!(
            config().with_ephemeral_storage_mb(511).validate(),
            Err(ConfigError::EphemeralStorage(511))
        );
    }
}
