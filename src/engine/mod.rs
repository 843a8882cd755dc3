//! Jobs: backup, copy, restore, verify. Each takes the repository, its options and
//! a [`Reporter`](crate::progress::Reporter), and never prints.

pub mod audit;
pub mod backup;
pub mod browse;
pub mod copy;
pub mod copy_map;
pub mod drill;
pub mod leftovers;
pub mod locks;
pub mod probe;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod retention;
pub mod spot;
pub mod stats;
pub mod tag;
pub mod verify;
mod verify_files;
pub mod wal_retention;

pub use backup::{backup, backup_with, BackupOptions};
pub use copy::{copy, CopyOptions, CopyReport};
pub use drill::{choose_point, drill, DrillOptions, DrillReport, PointChoice};
pub use prune::{forget, plan_forget, prune, PruneOptions, PruneReport};
pub use restore::live::{execute, LiveReport};
pub use restore::plan::{plan_service, RestorePlan, Scope};
pub use restore::rollback::{rollback, RollbackReport};
pub use restore::{restore, RestoreOptions, RestoreReport};
pub use verify::{verify, VerifyOptions, VerifyReport};

/// Worker threads for CPU-bound stages: every core.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}
