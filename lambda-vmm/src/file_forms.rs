//! How the host's own types in a snapshot are written to a snapshot file (with
//! `#[serde(with = ...)]`): points in time, a thread's registers and its XSAVE area, and
//! shared bytes as one run.
//!
//! A point in time (`Instant`) means nothing in another process, so it is written as its
//! distance from the moment the file is written, and read back as the same distance from the
//! moment it is read ([`with_epoch`]): a wait due 5 ms after the snapshot is due 5 ms after
//! the load, and the guest's monotonic clock goes on from where it was.

use std::cell::Cell;
use std::time::{Duration, Instant};

use kvm_bindings::{kvm_regs, kvm_xsave};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::vm::vcpu::{XSAVE_BYTES, register_words, registers_from_words, xsave_bytes, xsave_from};

thread_local! {
    /// The moment `Instant`s are written and read relative to.
    static EPOCH: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `f` with `Instant`s written and read relative to now.
pub fn with_epoch<T>(f: impl FnOnce() -> T) -> T {
    let previous = EPOCH.with(|epoch| epoch.replace(Some(Instant::now())));
    let result = f();
    EPOCH.with(|epoch| epoch.set(previous));
    result
}

fn epoch() -> Instant {
    EPOCH.with(|epoch| epoch.get()).unwrap_or_else(Instant::now)
}

/// Nanoseconds from the epoch (negative: before it), saturating.
fn offset(at: Instant) -> i64 {
    let now = epoch();
    match at.checked_duration_since(now) {
        Some(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        None => i64::try_from(now.duration_since(at).as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// The instant `nanos` from the epoch (clamped to what the host's clock can hold).
fn instant(nanos: i64) -> Instant {
    let now = epoch();
    let distance = Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        now.checked_add(distance).unwrap_or(now)
    } else {
        now.checked_sub(distance).unwrap_or(now)
    }
}

/// `#[serde(with = "instant")]` for an `Instant`.
pub mod instant {
    use super::*;

    pub fn serialize<S: Serializer>(at: &Instant, serializer: S) -> Result<S::Ok, S::Error> {
        offset(*at).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Instant, D::Error> {
        i64::deserialize(deserializer).map(instant)
    }
}

/// `#[serde(with = "optional_instant")]` for an `Option<Instant>`.
pub mod optional_instant {
    use super::*;

    pub fn serialize<S: Serializer>(
        at: &Option<Instant>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        at.map(offset).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Instant>, D::Error> {
        Option::<i64>::deserialize(deserializer).map(|at| at.map(instant))
    }
}

/// `#[serde(with = "registers")]` for a thread's general registers (`kvm_regs`), as their 18
/// values in sigcontext order ([`register_words`]).
pub mod registers {
    use super::*;

    pub fn serialize<S: Serializer>(regs: &kvm_regs, serializer: S) -> Result<S::Ok, S::Error> {
        register_words(regs).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<kvm_regs, D::Error> {
        <[u64; 18]>::deserialize(deserializer).map(registers_from_words)
    }
}

/// `#[serde(with = "xsave")]` for a thread's saved FPU/SSE/AVX state: the XSAVE region
/// `KVM_GET_XSAVE` fills ([`xsave_bytes`]), checked for its length when read.
pub mod xsave {
    use super::*;

    pub fn serialize<S: Serializer>(
        state: &Option<Box<kvm_xsave>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        state.as_deref().map(xsave_bytes).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Box<kvm_xsave>>, D::Error> {
        let Some(bytes) = Option::<Vec<u8>>::deserialize(deserializer)? else {
            return Ok(None);
        };
        if bytes.len() != XSAVE_BYTES {
            return Err(serde::de::Error::invalid_length(
                bytes.len(),
                &"the 4,096 bytes of an XSAVE region",
            ));
        }
        Ok(Some(xsave_from(&bytes)))
    }
}

/// `#[serde(with = "shared_bytes")]` for bytes held in an `Arc<[u8]>` (a file's contents
/// shared by every copy of a kernel): written as one run of bytes, as `serde_bytes` writes a
/// `Vec<u8>`, where serde's own form is a sequence written and read one byte at a time.
/// Postcard lays both out the same way (a length, then the bytes).
pub mod shared_bytes {
    use std::sync::Arc;

    use super::*;

    pub fn serialize<S: Serializer>(bytes: &Arc<[u8]>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<[u8]>, D::Error> {
        serde_bytes::ByteBuf::deserialize(deserializer).map(|bytes| Arc::from(bytes.into_vec()))
    }
}

/// `#[serde(with = "array")]` for an array longer than serde's own support (32), as a
/// sequence checked for its length when read.
pub mod array {
    use super::*;

    pub fn serialize<S: Serializer, T: Serialize, const N: usize>(
        items: &[T; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        items.as_slice().serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[T; N], D::Error> {
        let items = Vec::<T>::deserialize(deserializer)?;
        items.try_into().map_err(|items: Vec<T>| {
            serde::de::Error::invalid_length(items.len(), &"as many items as the array holds")
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Shared(#[serde(with = "shared_bytes")] Arc<[u8]>);

    /// Shared bytes keep the layout serde's sequence of `u8` had in snapshot files, so files
    /// written before read the same, and come back whole.
    #[test]
    fn shared_bytes_keep_their_layout() {
        let bytes: Vec<u8> = vec![7, 0, 255, 128];
        let written = postcard::to_stdvec(&Shared(Arc::from(bytes.clone()))).unwrap();
        assert_eq!(written, postcard::to_stdvec(&bytes).unwrap());
        let large: Arc<[u8]> = (0..=255u8).cycle().take(3 << 20).collect();
        let written = postcard::to_stdvec(&Shared(large.clone())).unwrap();
        assert_eq!(
            postcard::from_bytes::<Shared>(&written).unwrap(),
            Shared(large)
        );
        // A length past the end is refused, not trusted.
        assert!(postcard::from_bytes::<Shared>(&[200, 1, 1, 2]).is_err());
    }
}
