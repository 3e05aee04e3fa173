//! The guest's filesystem as a function's configuration and code make it.

use lambda_core::FunctionConfig;

use crate::kernel::vfs::{FileSystem, tmp_quota};
use crate::program::CodePackage;

/// `/var/task` from the package, `/opt` from its layers, `/tmp` as large as the function's
/// ephemeral storage, and the base image, if any, under the rest.
pub(super) fn guest_file_system(package: &CodePackage, config: &FunctionConfig) -> FileSystem {
    FileSystem::new(
        &package.files,
        &package.layers,
        tmp_quota(config.ephemeral_storage_mb),
        package.base_image.clone(),
    )
}
