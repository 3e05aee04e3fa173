//! Syscall arguments as Linux's x86-64 ABI defines them, read without unchecked arithmetic:
//! an `int` argument is the low 32 bits of its register, a field of a guest struct is at a
//! checked offset from the struct's address, and a guest count becomes a host size only
//! after it has been bounded.

use super::Errno;

/// An `int` argument: the low 32 bits of the register, as the kernel reads it.
pub(super) fn int(arg: u64) -> i32 {
    i32::from_le_bytes(uint(arg).to_le_bytes())
}

/// An `unsigned int` argument: the low 32 bits of the register.
pub(super) fn uint(arg: u64) -> u32 {
    let [a, b, c, d, ..] = arg.to_le_bytes();
    u32::from_le_bytes([a, b, c, d])
}

/// A signed 64-bit argument (`off_t`, `long`).
pub(super) fn long(arg: u64) -> i64 {
    i64::from_le_bytes(arg.to_le_bytes())
}

/// The guest address `offset` bytes past `base`; `EFAULT` if that wraps past the end of the
/// address space (such an address can never be valid).
pub(super) fn field(base: u64, offset: u64) -> Result<u64, Errno> {
    base.checked_add(offset).ok_or(Errno(libc::EFAULT))
}

/// A host size for a guest count the caller has already bounded (lossless on x86-64; a
/// count too large for the host saturates, and the bound it was checked against fails).
pub(super) fn size(count: u64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

/// A host size as a guest count (lossless on x86-64).
pub(super) fn count(size: usize) -> u64 {
    u64::try_from(size).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_read_as_the_abi_says() {
        assert_eq!(int(u64::MAX), -1);
        assert_eq!(int(0xffff_ffff_0000_0005), 5);
        assert_eq!(int(libc::AT_FDCWD as i64 as u64), libc::AT_FDCWD);
        assert_eq!(uint(0x1_0000_0002), 2);
        assert_eq!(long(u64::MAX), -1);
        assert_eq!(field(u64::MAX - 7, 8), Err(Errno(libc::EFAULT)));
        assert_eq!(field(16, 8), Ok(24));
        assert_eq!(size(7), 7);
        assert_eq!(count(7), 7);
    }
}
