//! Source adapters: how each kind of thing is read for backup. This issue's
//! kind is the directory tree; databases and streams follow the same shape.

pub mod files;
pub mod files_cache;
