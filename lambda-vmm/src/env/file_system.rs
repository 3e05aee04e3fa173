//! The guest's filesystem as a function's configuration and code make it.

use lambda_core::FunctionConfig;

use crate::kernel::vfs::FileSystem;
use crate::program::CodePackage;

/// `/var/task` from the package, `/opt` from its layers, `/tmp` as large as the function's
/// ephemeral storage, and the base image, if any, under the rest.
pub(super) fn guest_file_system(package: &CodePackage, config: &FunctionConfig) -> FileSystem {
    FileSystem::new(
        &package.files,
        &package.layers,
        u64::from(config.ephemeral_storage_mb) << 20,
        package.base_image.clone(),
    )
}
