//! Jobs: backup, restore, verify. Each takes the repository, its options and
//! a [`Reporter`](crate::progress::Reporter), and never prints.

pub mod backup;
pub mod restore;
pub mod verify;

pub use backup::{backup, BackupOptions};
pub use restore::{restore, RestoreOptions, RestoreReport};
pub use verify::{verify, VerifyOptions, VerifyReport};

/// Worker threads for CPU-bound stages: every core.
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}
