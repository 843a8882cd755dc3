//! Errors that an admin acts on. Each carries a guidance line: at 3 a.m. the
//! next step matters more than the cause.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}:{line}:{col}: {message}")]
    Config {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("the key {key} can write backups but cannot read them (it is a write-only key)")]
    WriteOnlyKey { key: String },
    #[error("no key in {key} opens the repository at {repo}")]
    WrongKey { key: String, repo: String },
    #[error("no key found for the repository at {repo} (looked in {looked})")]
    NoKey { repo: String, looked: String },
    #[error("{path} is not a Lifeboat repository")]
    NotARepository { path: String },
    /// Another backup tool's repository.
    #[error("{path} is a {tool} repository, not a Lifeboat one")]
    ForeignRepository { path: String, tool: &'static str },
    /// No key object opens with the key, and one of them is damaged.
    #[error(
        "the key object keys/{object} is damaged ({why}); no other key object opens with {key}"
    )]
    DamagedKey {
        object: String,
        why: String,
        key: String,
    },
    #[error("the repository is locked: {holder}")]
    Locked { holder: String, stale: bool },
    /// The storage refused to take a lock: a write-protected disk, a
    /// read-only mount or snapshot.
    #[error("the repository at {repo} is read-only ({cause})")]
    ReadOnly { repo: String, cause: String },
    #[error("restore target {target} is not empty")]
    TargetNotEmpty { target: PathBuf },
    #[error("restore point {snapshot} refers to an unsafe path {path:?}: {why}")]
    UnsafePath {
        snapshot: String,
        path: String,
        why: &'static str,
    },
    /// `suggest` is " (did you mean `x`?)" or empty.
    #[error("no restore point matches {query:?}{suggest}")]
    NoSnapshot { query: String, suggest: String },
    #[error("{query:?} matches several restore points: {candidates}")]
    AmbiguousSnapshot { query: String, candidates: String },
    /// The job was asked to stop; what it made is being removed.
    #[error("cancelled")]
    Cancelled,
    /// No config file where commands look for one.
    #[error("no config found (looked for --config, $LIFEBOAT_CONFIG, /etc/lifeboat/lifeboat.toml, ~/.config/lifeboat/lifeboat.toml)")]
    NoConfig,
    /// A configured key file that is not there.
    #[error("the key file {path} does not exist")]
    KeyFileMissing {
        path: PathBuf,
        repo: String,
        /// The repository is there: only its key is missing.
        exists: bool,
    },
    /// A chunk some restore point needs that no readable index file lists:
    /// usually an index file was damaged or lost, and the data is still in
    /// its pack.
    #[error("chunk {chunk} is not in the index")]
    ChunkNotIndexed { chunk: String },
    /// An index file that cannot be read; `what` says what stopped.
    #[error("{what}")]
    IndexDamaged { what: String },
    /// Object storage refused or kept failing; the hint depends on how.
    #[error("{what}")]
    Storage { what: String, hint: String },
}

impl Error {
    /// What the admin should do next.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Config { .. } => {
                "fix the file and run `lifeboat config check`; docs/usage.md documents every key".into()
            }
            Error::WriteOnlyKey { .. } => {
                "restore and verify need the repository's age identity: pass it with --key or LIFEBOAT_KEY".into()
            }
            Error::WrongKey { .. } => {
                "pass the identity printed by `lifeboat init` (or a break-glass key added with `lifeboat keys add`)".into()
            }
            Error::NoKey { .. } => "pass the key file with --key or LIFEBOAT_KEY".into(),
            Error::ForeignRepository { tool, .. } => format!(
                "open it with {tool}; give Lifeboat a new, empty directory with `lifeboat init --repo DIR`"
            ),
            Error::DamagedKey { .. } => {
                "open the repository with another key that has its own key object (a break-glass key added with `lifeboat keys add`, see docs/usage.md); then delete the damaged object and `lifeboat keys add` this key's recipient again".into()
            }
            Error::NotARepository { .. } => {
                "check the path, or create a repository there with `lifeboat init --repo PATH`".into()
            }
            Error::Locked { stale: true, .. } => {
                "the process holding the lock is gone; remove the lock with `lifeboat unlock` once you are sure nothing is running".into()
            }
            Error::Locked { stale: false, .. } => {
                "wait for that job to finish (`--retry-lock 2h` waits longer), or check it is still running before `lifeboat unlock`".into()
            }
            Error::ReadOnly { .. } => {
                "pass --no-lock to restore or verify without a lock; backups, prune and forget need a writable repository".into()
            }
            Error::TargetNotEmpty { .. } => {
                "restore into a new or empty directory, or pass --force to move what is there aside as a rollback point".into()
            }
            Error::UnsafePath { .. } => {
                "nothing was written outside the target; the restore point may have been tampered with: run `lifeboat verify --read-data`".into()
            }
            Error::NoSnapshot { .. } => "list restore points with `lifeboat snapshots`".into(),
            Error::AmbiguousSnapshot { .. } => "use more characters of the restore point's id".into(),
            Error::Storage { hint, .. } => hint.clone(),
            Error::ChunkNotIndexed { .. } | Error::IndexDamaged { .. } => {
                "an index file may be damaged or lost while the data is still in its pack: `lifeboat repair index` rebuilds the index from the packs; then run `lifeboat verify`".into()
            }
            Error::NoConfig => {
                "`lifeboat config init` writes a commented starter config; `lifeboat demo` looks around without one".into()
            }
            Error::KeyFileMissing { repo, exists: false, .. } => format!(
                "`lifeboat init` creates the repository `{repo}` and writes its key there; for an existing repository, copy its key there or pass --key"
            ),
            Error::KeyFileMissing { exists: true, .. } => {
                "the repository exists: put its key file back there (from your copy kept off this host), or pass --key with a break-glass key".into()
            }
            Error::Cancelled => return None,
        })
    }
}

/// The guidance line for any error chain that contains a Lifeboat [`Error`].
pub fn hint_for(err: &anyhow::Error) -> Option<String> {
    err.chain()
        .find_map(|e| e.downcast_ref::<Error>())
        .and_then(Error::hint)
}

/// Did this error come from a cancel?
pub fn is_cancelled(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| matches!(e.downcast_ref::<Error>(), Some(Error::Cancelled)))
}
