//! One tokio runtime per process, started on first use. Object storage,
//! signal handling and the console's background work all run on it, so a
//! process never holds several thread pools that each think they own the
//! machine.

use std::sync::OnceLock;

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

pub fn get() -> anyhow::Result<&'static tokio::runtime::Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(2)
                        .clamp(2, 8),
                )
                .thread_name("lifeboat-io")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("cannot start the I/O runtime: {e}"))
}

/// Runs `f` when the process gets SIGINT or SIGTERM (on the runtime's
/// threads, so it may block).
pub fn on_signal(f: impl FnOnce(&'static str) + Send + 'static) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = get()?;
    let _guard = rt.enter();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    rt.spawn(async move {
        let which = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        let _ = tokio::task::spawn_blocking(move || f(which)).await;
    });
    Ok(())
}
