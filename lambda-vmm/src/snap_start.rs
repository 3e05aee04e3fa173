//! SnapStart for the micro-VM backend: a function with
//! [`snap_start`](lambda_core::FunctionConfig::snap_start) set is snapshotted once per
//! version (its configuration and its code), after its first Init, and its later
//! environments are restored from that snapshot. A function that cannot be snapshotted
//! starts with an Init every time, and its environments say why
//! ([`EnvironmentStart::SnapshotRefused`]).
//!
//! Lambda takes the snapshot when a version is published. Here it is taken when the first
//! environment of the version is made, which for a service with provisioned concurrency is
//! when the version's provisioned environments are made.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use lambda_core::{EnvironmentStart, FunctionConfig};

use crate::snapshot::{Snapshot, SnapshotError};
use crate::sync::lock;

/// Most snapshots kept at once (each holds the memory its function had written); the
/// oldest is dropped first, and its next environment makes it again.
pub const MAX_SNAPSHOTS: usize = 32;

/// What is known of one function version.
#[derive(Clone)]
pub(crate) enum Known {
    /// Its snapshot.
    Ready(Snapshot),
    /// Why it cannot be snapshotted.
    Refused(String),
}

impl Known {
    /// How an environment of this version that was not restored started.
    pub fn start_without_snapshot(&self) -> EnvironmentStart {
        match self {
            Known::Ready(_) => EnvironmentStart::Init,
            Known::Refused(why) => EnvironmentStart::SnapshotRefused(why.clone()),
        }
    }
}

/// The snapshots of the function versions seen, by version.
#[derive(Default)]
pub(crate) struct SnapStart {
    known: Mutex<(HashMap<String, Known>, VecDeque<String>)>,
    /// One lock per version being snapshotted: environments of that version made meanwhile
    /// wait for its snapshot instead of each running an Init of its own.
    making: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl SnapStart {
    /// The key of a version: its whole configuration and the identity of its staged code.
    pub fn key(config: &FunctionConfig, image_identity: usize) -> String {
        format!("{image_identity:x}/{config:?}")
    }

    /// What is known of the version `key`.
    pub fn get(&self, key: &str) -> Option<Known> {
        lock(&self.known).0.get(key).cloned()
    }

    /// What is known of the version `key`, or, if nothing is yet, what `make` finds out:
    /// it makes the version's first environment and tries to snapshot it, returning the
    /// environment and the attempt. One `make` runs per version at a time; the callers that
    /// come meanwhile wait for it and then use what it found. A `make` that fails (Init
    /// failed) records nothing, so the next caller tries again.
    pub fn get_or_make<T, E>(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<(T, Result<Snapshot, SnapshotError>), E>,
    ) -> Result<(Known, Option<T>), E> {
        if let Some(known) = self.get(key) {
            return Ok((known, None));
        }
        let maker = Arc::clone(lock(&self.making).entry(key.to_string()).or_default());
        let _making = lock(&maker);
        if let Some(known) = self.get(key) {
            return Ok((known, None));
        }
        let made = make();
        if let Ok((_, taken)) = &made {
            self.record(key.to_string(), taken);
        }
        lock(&self.making).remove(key);
        let (made, taken) = made?;
        let known = match taken {
            Ok(snapshot) => Known::Ready(snapshot),
            Err(error) => Known::Refused(crate::error::chain(&error)),
        };
        Ok((known, Some(made)))
    }

    /// Makes `snapshot` the snapshot of version `key` unless something is known of it
    /// already (or being found out: this waits for that). Returns whether it did.
    pub fn adopt(&self, key: &str, snapshot: Snapshot) -> bool {
        if self.get(key).is_some() {
            return false;
        }
        let maker = Arc::clone(lock(&self.making).entry(key.to_string()).or_default());
        let _making = lock(&maker);
        let adopted = self.get(key).is_none();
        if adopted {
            self.record(key.to_string(), &Ok(snapshot));
        }
        lock(&self.making).remove(key);
        adopted
    }

    /// Records what taking the version's snapshot gave.
    fn record(&self, key: String, taken: &Result<Snapshot, SnapshotError>) {
        let known = match taken {
            Ok(snapshot) => Known::Ready(snapshot.clone()),
            Err(error) => Known::Refused(crate::error::chain(error)),
        };
        let mut guard = lock(&self.known);
        let (map, order) = &mut *guard;
        if map.insert(key.clone(), known).is_none() {
            order.push_back(key);
        }
        while order.len() > MAX_SNAPSHOTS {
            if let Some(oldest) = order.pop_front() {
                map.remove(&oldest);
            }
        }
    }

    /// How many versions are known.
    pub fn len(&self) -> usize {
        lock(&self.known).0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Result<Snapshot, SnapshotError> {
        Err(SnapshotError::NotQuiescent("a thread kept running".into()))
    }

    #[test]
    fn one_environment_per_version_finds_out_and_the_others_use_what_it_found() {
        let snap_start = SnapStart::default();
        let (entered, proceed) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|s| {
            let first = s.spawn(|| {
                snap_start.get_or_make("v1", || {
                    entered.wait();
                    proceed.wait();
                    Ok::<_, ()>(("first", refused()))
                })
            });
            // The first is inside its `make`; this one waits for it (or finds what it
            // recorded) and never runs a `make` of its own.
            entered.wait();
            let second = s.spawn(|| {
                snap_start.get_or_make("v1", || -> Result<(&str, _), ()> {
                    panic!("a second make for the same version")
                })
            });
            proceed.wait();
            let (known, made) = first.join().unwrap().unwrap();
            assert_eq!(made, Some("first"));
            assert!(matches!(known, Known::Refused(why) if why.contains("kept running")));
            let (known, made) = second.join().unwrap().unwrap();
            assert_eq!(made, None);
            assert!(matches!(known, Known::Refused(_)));
        });
        assert_eq!(snap_start.len(), 1);
    }

    #[test]
    fn a_failed_make_records_nothing_and_old_versions_are_dropped() {
        let snap_start = SnapStart::default();
        let failed = snap_start.get_or_make("v1", || Err::<((), _), _>("init failed"));
        assert_eq!(failed.err(), Some("init failed"));
        assert_eq!(snap_start.len(), 0);
        for version in 0..MAX_SNAPSHOTS + 3 {
            let key = format!("v{version}");
            snap_start
                .get_or_make(&key, || Ok::<_, ()>(((), refused())))
                .unwrap();
        }
        assert_eq!(snap_start.len(), MAX_SNAPSHOTS);
        // The oldest went first: asking for it makes it again.
        let (_, made) = snap_start
            .get_or_make("v0", || Ok::<_, ()>(("again", refused())))
            .unwrap();
        assert_eq!(made, Some("again"));
    }
}
