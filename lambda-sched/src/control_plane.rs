//! The control plane: functions, their immutable versions and their aliases.
//!
//! A function has a mutable `$LATEST` and numbered versions published from it. Every
//! version, and every revision of `$LATEST`, gets its own [`PoolId`]: environments are made
//! for one pool and never serve another, so updating `$LATEST`'s code or configuration sends
//! new invocations to new environments while the old ones finish and are retired.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use lambda_core::{CodeLocation, FunctionConfig};

use crate::counting::{ConcurrencyLimits, FunctionSlots};
use crate::destination::DeadLetterSink;
use crate::error::{Error, Result};
use crate::event_invoke_config::EventInvokeConfig;
use crate::ids::{PoolId, Version};
use crate::metrics::InvocationCounters;
use crate::sync::{lock, read, write};

/// What the control plane reports about a function version.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionInfo {
    /// The function's name.
    pub name: String,
    /// The version's ARN (qualified for published versions).
    pub arn: String,
    /// Which version this is.
    pub version: Version,
    /// The version's configuration and code.
    pub config: FunctionConfig,
    /// The description given when the version was published.
    pub description: String,
    /// The function's reserved concurrency, if any.
    pub reserved_concurrency: Option<u32>,
    /// The pool of environments this version runs in.
    pub pool: PoolId,
}

/// Weighted routing of an alias to a second version.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AliasRouting {
    /// The additional version.
    pub version: u32,
    /// The share of invocations it gets, 0.0-1.0.
    pub weight: f64,
}

/// An alias: a name pointing at a version, optionally splitting traffic with a second one.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasInfo {
    /// The alias name.
    pub name: String,
    /// The alias ARN.
    pub arn: String,
    /// The version the alias points at.
    pub function_version: Version,
    /// The optional second version and its weight.
    pub routing: Option<AliasRouting>,
}

/// One version as the data plane uses it.
#[derive(Debug)]
pub(crate) struct VersionRecord {
    pub pool: PoolId,
    pub version: Version,
    pub config: FunctionConfig,
    pub arn: String,
    pub description: String,
}

#[derive(Debug)]
struct FunctionState {
    latest: Arc<VersionRecord>,
    versions: BTreeMap<u32, Arc<VersionRecord>>,
    next_version: u32,
    aliases: BTreeMap<String, AliasInfo>,
    /// Provisioned concurrency by qualifier (a version number or an alias).
    provisioned: BTreeMap<String, u32>,
    /// Async settings by qualifier; `None` is the function-wide default.
    event_invoke: BTreeMap<Option<String>, EventInvokeConfig>,
    dead_letter: Option<Arc<dyn DeadLetterSink>>,
}

/// A function, as the data plane holds it while invoking.
#[derive(Debug)]
pub(crate) struct FunctionEntry {
    pub name: String,
    pub slots: FunctionSlots,
    pub metrics: InvocationCounters,
    state: RwLock<FunctionState>,
}

/// A function reference resolved to one version.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub function: Arc<FunctionEntry>,
    pub version: Arc<VersionRecord>,
    /// The qualifier as invoked (`None` for an unqualified invocation).
    pub qualifier: Option<String>,
}

impl Resolved {
    /// The ARN the caller invoked.
    pub fn invoked_arn(&self, plane: &ControlPlane) -> String {
        plane.arn(&self.function.name, self.qualifier.as_deref())
    }
}

/// The registry of functions.
#[derive(Debug)]
pub(crate) struct ControlPlane {
    region: String,
    account_id: String,
    functions: RwLock<HashMap<String, Arc<FunctionEntry>>>,
    next_pool: AtomicU64,
    /// The draw of weighted alias routing, seeded by the service configuration.
    routing_rng: Mutex<fastrand::Rng>,
}

fn validate_alias_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !name.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid alias name {name:?}: use 1-128 letters, digits, '-' and '_', not only digits"
        )))
    }
}

impl ControlPlane {
    pub(crate) fn new(region: &str, account_id: &str, seed: u64) -> Self {
        ControlPlane {
            region: region.to_string(),
            account_id: account_id.to_string(),
            functions: RwLock::new(HashMap::new()),
            next_pool: AtomicU64::new(1),
            routing_rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        }
    }

    /// `arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
    pub(crate) fn arn(&self, name: &str, qualifier: Option<&str>) -> String {
        let mut arn = format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region, self.account_id
        );
        if let Some(qualifier) = qualifier {
            arn.push(':');
            arn.push_str(qualifier);
        }
        arn
    }

    fn new_version(
        &self,
        name: &str,
        version: Version,
        config: FunctionConfig,
        description: String,
    ) -> Arc<VersionRecord> {
        let qualifier = match version {
            Version::Latest => None,
            Version::Published(n) => Some(n.to_string()),
        };
        Arc::new(VersionRecord {
            pool: PoolId(self.next_pool.fetch_add(1, Ordering::Relaxed)),
            version,
            arn: self.arn(name, qualifier.as_deref()),
            config,
            description,
        })
    }

    fn info(&self, function: &FunctionEntry, version: &VersionRecord) -> FunctionInfo {
        FunctionInfo {
            name: function.name.clone(),
            arn: version.arn.clone(),
            version: version.version,
            config: version.config.clone(),
            description: version.description.clone(),
            reserved_concurrency: function.slots.reserved(),
            pool: version.pool,
        }
    }

    pub(crate) fn entry(&self, name: &str) -> Result<Arc<FunctionEntry>> {
        read(&self.functions).get(name).cloned().ok_or_else(|| {
            Error::not_found(format!("Function not found: {}", self.arn(name, None)))
        })
    }

    pub(crate) fn entries(&self) -> Vec<Arc<FunctionEntry>> {
        let mut all: Vec<_> = read(&self.functions).values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub(crate) fn create(
        &self,
        config: FunctionConfig,
        limits: &ConcurrencyLimits,
        now: Duration,
    ) -> Result<FunctionInfo> {
        config
            .validate()
            .map_err(|e| Error::invalid(e.to_string()))?;
        let mut functions = write(&self.functions);
        if functions.contains_key(&config.name) {
            return Err(Error::conflict(format!(
                "Function already exist: {}",
                config.name
            )));
        }
        let name = config.name.clone();
        let latest = self.new_version(&name, Version::Latest, config, String::new());
        let entry = Arc::new(FunctionEntry {
            name: name.clone(),
            slots: FunctionSlots::new(limits, now),
            metrics: InvocationCounters::default(),
            state: RwLock::new(FunctionState {
                latest: latest.clone(),
                versions: BTreeMap::new(),
                next_version: 1,
                aliases: BTreeMap::new(),
                provisioned: BTreeMap::new(),
                event_invoke: BTreeMap::new(),
                dead_letter: None,
            }),
        });
        let info = self.info(&entry, &latest);
        functions.insert(name, entry);
        Ok(info)
    }

    /// Replaces `$LATEST` with `change(config)`; returns the new info and the retired pool.
    pub(crate) fn update_latest(
        &self,
        name: &str,
        change: impl FnOnce(&FunctionConfig) -> FunctionConfig,
    ) -> Result<(FunctionInfo, PoolId)> {
        let entry = self.entry(name)?;
        let mut state = write(&entry.state);
        let config = change(&state.latest.config);
        if config.name != name {
            return Err(Error::invalid(format!(
                "the configuration names function {:?}; a function cannot be renamed ({name:?})",
                config.name
            )));
        }
        config
            .validate()
            .map_err(|e| Error::invalid(e.to_string()))?;
        let retired = state.latest.pool;
        state.latest = self.new_version(name, Version::Latest, config, String::new());
        Ok((self.info(&entry, &state.latest), retired))
    }

    pub(crate) fn update_code(
        &self,
        name: &str,
        code: CodeLocation,
    ) -> Result<(FunctionInfo, PoolId)> {
        self.update_latest(name, |config| FunctionConfig {
            code,
            ..config.clone()
        })
    }

    pub(crate) fn publish(&self, name: &str, description: &str) -> Result<FunctionInfo> {
        let entry = self.entry(name)?;
        let mut state = write(&entry.state);
        if let Some((_, last)) = state.versions.iter().next_back()
            && last.config == state.latest.config
        {
            // Lambda publishes nothing new when $LATEST has not changed.
            return Ok(self.info(&entry, last));
        }
        let number = state.next_version;
        state.next_version += 1;
        let record = self.new_version(
            name,
            Version::Published(number),
            state.latest.config.clone(),
            description.to_string(),
        );
        state.versions.insert(number, record.clone());
        Ok(self.info(&entry, &record))
    }

    pub(crate) fn get(&self, name: &str, qualifier: Option<&str>) -> Result<FunctionInfo> {
        let resolved = self.resolve_static(name, qualifier)?;
        Ok(self.info(&resolved.function, &resolved.version))
    }

    pub(crate) fn list(&self) -> Vec<FunctionInfo> {
        self.entries()
            .iter()
            .map(|entry| self.info(entry, &read(&entry.state).latest))
            .collect()
    }

    pub(crate) fn list_versions(&self, name: &str) -> Result<Vec<FunctionInfo>> {
        let entry = self.entry(name)?;
        let state = read(&entry.state);
        let mut all = vec![self.info(&entry, &state.latest)];
        all.extend(state.versions.values().map(|v| self.info(&entry, v)));
        Ok(all)
    }

    /// Removes a function (qualifier `None`) or one published version; returns the pools to
    /// retire.
    pub(crate) fn delete(&self, name: &str, qualifier: Option<&str>) -> Result<Vec<PoolId>> {
        match qualifier {
            None => {
                let entry = write(&self.functions).remove(name).ok_or_else(|| {
                    Error::not_found(format!("Function not found: {}", self.arn(name, None)))
                })?;
                let state = read(&entry.state);
                let mut pools = vec![state.latest.pool];
                pools.extend(state.versions.values().map(|v| v.pool));
                Ok(pools)
            }
            Some(qualifier) => {
                let entry = self.entry(name)?;
                let mut state = write(&entry.state);
                let number = match Version::parse(qualifier) {
                    Some(Version::Published(n)) => n,
                    Some(Version::Latest) => {
                        return Err(Error::invalid(
                            "$LATEST cannot be deleted on its own: delete the function",
                        ));
                    }
                    None => {
                        return Err(Error::invalid(format!(
                            "{qualifier:?} is not a version number; delete aliases with \
                             delete_alias"
                        )));
                    }
                };
                if let Some(alias) = state.aliases.values().find(|a| {
                    a.function_version == Version::Published(number)
                        || a.routing.is_some_and(|r| r.version == number)
                }) {
                    return Err(Error::conflict(format!(
                        "version {number} of {name} is used by alias {:?}",
                        alias.name
                    )));
                }
                let record = state.versions.remove(&number).ok_or_else(|| {
                    Error::not_found(format!(
                        "Function not found: {}",
                        self.arn(name, Some(qualifier))
                    ))
                })?;
                state.provisioned.remove(qualifier);
                state.event_invoke.remove(&Some(qualifier.to_string()));
                Ok(vec![record.pool])
            }
        }
    }

    fn check_alias_target(
        state: &FunctionState,
        name: &str,
        version: Version,
        routing: Option<AliasRouting>,
    ) -> Result<()> {
        if let Version::Published(n) = version
            && !state.versions.contains_key(&n)
        {
            return Err(Error::not_found(format!(
                "version {n} of function {name} does not exist"
            )));
        }
        if let Some(routing) = routing {
            if !(0.0..=1.0).contains(&routing.weight) {
                return Err(Error::invalid(format!(
                    "routing weight {} is out of range: choose 0.0-1.0",
                    routing.weight
                )));
            }
            if version == Version::Latest {
                return Err(Error::invalid(
                    "weighted routing needs the alias to point at a published version, not \
                     $LATEST",
                ));
            }
            if version == Version::Published(routing.version) {
                return Err(Error::invalid(
                    "the additional version must differ from the alias's primary version",
                ));
            }
            if !state.versions.contains_key(&routing.version) {
                return Err(Error::not_found(format!(
                    "version {} of function {name} does not exist",
                    routing.version
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn put_alias(
        &self,
        name: &str,
        alias: &str,
        version: Version,
        routing: Option<AliasRouting>,
        create: bool,
    ) -> Result<AliasInfo> {
        validate_alias_name(alias)?;
        let entry = self.entry(name)?;
        let mut state = write(&entry.state);
        let exists = state.aliases.contains_key(alias);
        if create && exists {
            return Err(Error::conflict(format!(
                "alias {alias:?} of function {name} already exists"
            )));
        }
        if !create && !exists {
            return Err(Error::not_found(format!(
                "alias {alias:?} of function {name} does not exist"
            )));
        }
        Self::check_alias_target(&state, name, version, routing)?;
        let info = AliasInfo {
            name: alias.to_string(),
            arn: self.arn(name, Some(alias)),
            function_version: version,
            routing,
        };
        state.aliases.insert(alias.to_string(), info.clone());
        Ok(info)
    }

    pub(crate) fn get_alias(&self, name: &str, alias: &str) -> Result<AliasInfo> {
        let entry = self.entry(name)?;
        let state = read(&entry.state);
        state.aliases.get(alias).cloned().ok_or_else(|| {
            Error::not_found(format!("alias {alias:?} of function {name} does not exist"))
        })
    }

    pub(crate) fn list_aliases(&self, name: &str) -> Result<Vec<AliasInfo>> {
        let entry = self.entry(name)?;
        let state = read(&entry.state);
        Ok(state.aliases.values().cloned().collect())
    }

    pub(crate) fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        let entry = self.entry(name)?;
        let mut state = write(&entry.state);
        state.aliases.remove(alias).ok_or_else(|| {
            Error::not_found(format!("alias {alias:?} of function {name} does not exist"))
        })?;
        state.provisioned.remove(alias);
        state.event_invoke.remove(&Some(alias.to_string()));
        Ok(())
    }

    /// Splits a function reference into name and qualifier. Accepts `name`, `name:qualifier`,
    /// `123456789012:function:name[:qualifier]` and the full ARN.
    pub(crate) fn parse_reference<'a>(
        reference: &'a str,
        qualifier: Option<&'a str>,
    ) -> Result<(&'a str, Option<&'a str>)> {
        let parts: Vec<&str> = reference.split(':').collect();
        let (name, embedded) = match parts.as_slice() {
            [name] => (*name, None),
            [name, qualifier] => (*name, Some(*qualifier)),
            [_, "function", name] => (*name, None),
            [_, "function", name, qualifier] => (*name, Some(*qualifier)),
            ["arn", _, "lambda", _, _, "function", name] => (*name, None),
            ["arn", _, "lambda", _, _, "function", name, qualifier] => (*name, Some(*qualifier)),
            _ => {
                return Err(Error::invalid(format!(
                    "{reference:?} is not a function name, name:qualifier or function ARN"
                )));
            }
        };
        if name.is_empty() || name.len() > lambda_core::limits::MAX_FUNCTION_NAME_LEN {
            return Err(Error::invalid(format!(
                "invalid function name {name:?}: use 1-64 characters"
            )));
        }
        match (embedded, qualifier) {
            (Some(a), Some(b)) if a != b => Err(Error::invalid(format!(
                "the qualifier {a:?} in the function name does not match the qualifier {b:?}"
            ))),
            (Some(q), _) | (None, Some(q)) => Ok((name, Some(q))),
            (None, None) => Ok((name, None)),
        }
    }

    fn resolve_in(
        &self,
        function: Arc<FunctionEntry>,
        qualifier: Option<&str>,
        routed: bool,
    ) -> Result<Resolved> {
        let version = {
            let state = read(&function.state);
            match qualifier {
                None => state.latest.clone(),
                Some(q) => match Version::parse(q) {
                    Some(Version::Latest) => state.latest.clone(),
                    Some(Version::Published(n)) => {
                        state.versions.get(&n).cloned().ok_or_else(|| {
                            Error::not_found(format!(
                                "Function not found: {}",
                                self.arn(&function.name, Some(q))
                            ))
                        })?
                    }
                    None => {
                        let alias = state.aliases.get(q).ok_or_else(|| {
                            Error::not_found(format!(
                                "Function not found: {}",
                                self.arn(&function.name, Some(q))
                            ))
                        })?;
                        let mut target = alias.function_version;
                        if routed
                            && let Some(routing) = alias.routing
                            && self.routing_draw() < routing.weight
                        {
                            target = Version::Published(routing.version);
                        }
                        match target {
                            Version::Latest => state.latest.clone(),
                            Version::Published(n) => {
                                state.versions.get(&n).cloned().ok_or_else(|| {
                                    Error::service(format!(
                                        "alias {q:?} points at missing version {n}"
                                    ))
                                })?
                            }
                        }
                    }
                },
            }
        };
        Ok(Resolved {
            function,
            version,
            qualifier: qualifier.map(str::to_string),
        })
    }

    /// Uniform in [0, 1): the draw that sends an invocation of a weighted alias to its second
    /// version when it is below the weight.
    fn routing_draw(&self) -> f64 {
        lock(&self.routing_rng).f64()
    }

    /// Resolves a reference for an invocation: aliases with weighted routing pick a version
    /// at random with the configured weight.
    pub(crate) fn resolve(&self, reference: &str, qualifier: Option<&str>) -> Result<Resolved> {
        let (name, qualifier) = Self::parse_reference(reference, qualifier)?;
        let function = self.entry(name)?;
        self.resolve_in(function, qualifier, true)
    }

    /// Resolves without routing: an alias gives its primary version.
    pub(crate) fn resolve_static(
        &self,
        reference: &str,
        qualifier: Option<&str>,
    ) -> Result<Resolved> {
        let (name, qualifier) = Self::parse_reference(reference, qualifier)?;
        let function = self.entry(name)?;
        self.resolve_in(function, qualifier, false)
    }

    pub(crate) fn set_provisioned(
        &self,
        name: &str,
        qualifier: &str,
        count: Option<u32>,
    ) -> Result<()> {
        let resolved = self.resolve_static(name, Some(qualifier))?;
        if resolved.version.version == Version::Latest {
            return Err(Error::invalid(
                "provisioned concurrency needs a published version or an alias, not $LATEST",
            ));
        }
        let mut state = write(&resolved.function.state);
        match count {
            Some(n) => {
                state.provisioned.insert(qualifier.to_string(), n);
            }
            None => {
                state.provisioned.remove(qualifier).ok_or_else(|| {
                    Error::not_found(format!(
                        "no provisioned concurrency configured for {}",
                        self.arn(name, Some(qualifier))
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// Provisioned concurrency wanted per pool, over every function.
    pub(crate) fn provisioned_targets(&self) -> Vec<(Arc<FunctionEntry>, Arc<VersionRecord>, u32)> {
        let mut targets: Vec<(Arc<FunctionEntry>, Arc<VersionRecord>, u32)> = Vec::new();
        for entry in self.entries() {
            let qualifiers: Vec<(String, u32)> = read(&entry.state)
                .provisioned
                .iter()
                .map(|(q, n)| (q.clone(), *n))
                .collect();
            for (qualifier, n) in qualifiers {
                if let Ok(resolved) = self.resolve_in(entry.clone(), Some(&qualifier), false) {
                    match targets
                        .iter_mut()
                        .find(|(_, v, _)| v.pool == resolved.version.pool)
                    {
                        Some(existing) => existing.2 += n,
                        None => targets.push((entry.clone(), resolved.version, n)),
                    }
                }
            }
        }
        targets
    }

    pub(crate) fn provisioned_total(&self, name: &str) -> Result<u32> {
        let entry = self.entry(name)?;
        Ok(read(&entry.state).provisioned.values().sum())
    }

    pub(crate) fn provisioned_for(&self, name: &str, qualifier: &str) -> Result<Option<u32>> {
        let entry = self.entry(name)?;
        Ok(read(&entry.state).provisioned.get(qualifier).copied())
    }

    pub(crate) fn set_event_invoke_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
        config: EventInvokeConfig,
    ) -> Result<()> {
        config.validate()?;
        let resolved = self.resolve_static(name, qualifier)?;
        write(&resolved.function.state)
            .event_invoke
            .insert(qualifier.map(str::to_string), config);
        Ok(())
    }

    /// The async settings for an invocation made with `qualifier`.
    pub(crate) fn event_invoke_config(
        function: &FunctionEntry,
        qualifier: Option<&str>,
    ) -> (EventInvokeConfig, Option<Arc<dyn DeadLetterSink>>) {
        let state = read(&function.state);
        let config = qualifier
            .and_then(|q| state.event_invoke.get(&Some(q.to_string())))
            .or_else(|| state.event_invoke.get(&None))
            .cloned()
            .unwrap_or_default();
        (config, state.dead_letter.clone())
    }

    pub(crate) fn set_dead_letter(
        &self,
        name: &str,
        sink: Option<Arc<dyn DeadLetterSink>>,
    ) -> Result<()> {
        let entry = self.entry(name)?;
        write(&entry.state).dead_letter = sink;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane() -> ControlPlane {
        ControlPlane::new("us-east-1", "123456789012", 1)
    }

    fn config(name: &str) -> FunctionConfig {
        FunctionConfig::new(name, CodeLocation::Executable("/bin/f".into()))
    }

    fn create(plane: &ControlPlane, name: &str) -> FunctionInfo {
        plane
            .create(config(name), &ConcurrencyLimits::default(), Duration::ZERO)
            .unwrap()
    }

    #[test]
    fn routing_draws_are_in_the_unit_interval_and_move() {
        let plane = plane();
        let a = plane.routing_draw();
        assert!((0.0..1.0).contains(&a));
        assert_ne!(a, plane.routing_draw());
    }

    #[test]
    fn references_in_all_of_lambdas_forms() {
        let p = ControlPlane::parse_reference;
        assert_eq!(p("f", None).unwrap(), ("f", None));
        assert_eq!(p("f:live", None).unwrap(), ("f", Some("live")));
        assert_eq!(p("f", Some("3")).unwrap(), ("f", Some("3")));
        assert_eq!(
            p("123456789012:function:f:2", None).unwrap(),
            ("f", Some("2"))
        );
        assert_eq!(
            p("arn:aws:lambda:us-east-1:123456789012:function:f", None).unwrap(),
            ("f", None)
        );
        assert!(p("f:1", Some("2")).is_err());
        assert!(p("a:b:c", None).is_err());
        assert!(p("", None).is_err());
    }

    #[test]
    fn create_conflict_and_invalid_config() {
        let plane = plane();
        let info = create(&plane, "f");
        assert_eq!(info.version, Version::Latest);
        assert_eq!(info.arn, "arn:aws:lambda:us-east-1:123456789012:function:f");
        let again = plane.create(config("f"), &ConcurrencyLimits::default(), Duration::ZERO);
        assert!(matches!(again, Err(Error::ResourceConflict { .. })));
        let bad = plane.create(
            config("g").with_memory_mb(64),
            &ConcurrencyLimits::default(),
            Duration::ZERO,
        );
        match bad {
            Err(Error::InvalidParameterValue { message }) => assert!(message.contains("128")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plane.entry("g"),
            Err(Error::ResourceNotFound { .. })
        ));
    }

    #[test]
    fn versions_are_immutable_snapshots_with_their_own_pools() {
        let plane = plane();
        let latest = create(&plane, "f");
        let v1 = plane.publish("f", "first").unwrap();
        assert_eq!(v1.version, Version::Published(1));
        assert_ne!(v1.pool, latest.pool);
        assert!(v1.arn.ends_with(":function:f:1"));
        // Unchanged $LATEST: publishing again returns version 1.
        assert_eq!(
            plane.publish("f", "again").unwrap().version,
            Version::Published(1)
        );
        let (updated, retired) = plane
            .update_latest("f", |c| c.clone().with_memory_mb(256))
            .unwrap();
        assert_eq!(retired, latest.pool);
        assert_ne!(updated.pool, latest.pool);
        let v2 = plane.publish("f", "").unwrap();
        assert_eq!(v2.version, Version::Published(2));
        assert_eq!(plane.get("f", Some("1")).unwrap().config.memory_mb, 128);
        assert_eq!(plane.get("f:2", None).unwrap().config.memory_mb, 256);
        assert_eq!(plane.list_versions("f").unwrap().len(), 3);
        assert!(matches!(
            plane.get("f", Some("9")),
            Err(Error::ResourceNotFound { .. })
        ));
        let renamed = plane.update_latest("f", |c| FunctionConfig {
            name: "g".into(),
            ..c.clone()
        });
        assert!(matches!(renamed, Err(Error::InvalidParameterValue { .. })));
    }

    #[test]
    fn aliases_route_by_weight_and_protect_their_versions() {
        let plane = plane();
        create(&plane, "f");
        plane.publish("f", "").unwrap();
        plane
            .update_latest("f", |c| c.clone().with_memory_mb(256))
            .unwrap();
        plane.publish("f", "").unwrap();
        assert!(
            plane
                .put_alias("f", "123", Version::Published(1), None, true)
                .is_err()
        );
        assert!(matches!(
            plane.put_alias("f", "live", Version::Published(7), None, true),
            Err(Error::ResourceNotFound { .. })
        ));
        let routing = AliasRouting {
            version: 2,
            weight: 0.25,
        };
        plane
            .put_alias("f", "live", Version::Published(1), Some(routing), true)
            .unwrap();
        assert!(matches!(
            plane.put_alias("f", "live", Version::Published(1), None, true),
            Err(Error::ResourceConflict { .. })
        ));
        let mut to_two = 0;
        for _ in 0..4000 {
            let resolved = plane.resolve("f:live", None).unwrap();
            if resolved.version.version == Version::Published(2) {
                to_two += 1;
            }
        }
        assert!(
            (800..1200).contains(&to_two),
            "{to_two} of 4000 went to version 2"
        );
        assert_eq!(
            plane
                .resolve_static("f", Some("live"))
                .unwrap()
                .version
                .version,
            Version::Published(1)
        );
        assert!(matches!(
            plane.delete("f", Some("2")),
            Err(Error::ResourceConflict { .. })
        ));
        plane.delete_alias("f", "live").unwrap();
        assert_eq!(plane.delete("f", Some("2")).unwrap().len(), 1);
        assert!(matches!(
            plane.delete("f", Some("$LATEST")),
            Err(Error::InvalidParameterValue { .. })
        ));
        assert_eq!(plane.delete("f", None).unwrap().len(), 2);
        assert!(plane.list().is_empty());
    }
}
