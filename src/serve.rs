//! `lifeboat serve`: a repository directory over HTTP, so that a host can
//! back up into storage it cannot delete from. With `append_only` the
//! server stores new objects and serves reads, and refuses every overwrite
//! and delete with 403 — except of lock objects, which guard no data (see
//! docs/security.md for what that costs). Without it, it is a full server
//! for the admin box (prune, key changes).
//!
//! The protocol, which `repo::rest` speaks:
//! `GET|HEAD|POST /config`, `POST /?create=true`, `GET /<kind>/` (a JSON
//! list of `{"name","size"}`), `GET|HEAD|POST|DELETE /<kind>/<name>`.

use crate::repo::{backend, Backend, Kind, LocalBackend};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The largest object the server accepts. Packs are 16 MiB by default;
/// this leaves room for a repository made with bigger ones and bounds the
/// memory one upload can take.
pub const MAX_OBJECT: usize = 512 << 20;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub root: PathBuf,
    pub append_only: bool,
}

/// The kinds a client may name, by their folder.
const KINDS: [Kind; 6] = [
    Kind::Keys,
    Kind::Data,
    Kind::Index,
    Kind::Snapshots,
    Kind::Locks,
    Kind::Damage,
];

fn kind_of(dir: &str) -> Option<Kind> {
    KINDS.into_iter().find(|k| k.dir() == dir)
}

/// Where a request points.
enum Target {
    /// `/` (create) or `/<kind>/` (list).
    Root,
    List(Kind),
    Object(Kind, String),
}

fn target(path: &str) -> Option<Target> {
    let p = path.strip_prefix('/')?;
    if p.is_empty() {
        return Some(Target::Root);
    }
    if p == "config" {
        return Some(Target::Object(Kind::Config, "config".into()));
    }
    let (dir, name) = p.split_once('/')?;
    let kind = kind_of(dir)?;
    if name.is_empty() {
        return Some(Target::List(kind));
    }
    backend::valid_name(name).ok()?;
    Some(Target::Object(kind, name.to_string()))
}

fn name_of(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Config => "config".into(),
        _ => format!("{}/{name}", kind.dir()),
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

fn refused(what: String) -> Response<Full<Bytes>> {
    reply(
        StatusCode::FORBIDDEN,
        format!(
            "{what}: this server is append-only (lifeboat serve --append-only); \
             forget, prune and key changes run on the admin box, through a full \
             `lifeboat serve` or on the disk\n"
        ),
    )
}

/// One request, answered from the directory. Filesystem work is blocking,
/// so it runs on the runtime's blocking threads.
async fn handle(
    store: Arc<LocalBackend>,
    append_only: bool,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let Some(t) = target(req.uri().path()) else {
        return reply(StatusCode::NOT_FOUND, "no such object or kind\n");
    };
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or_default().to_string();
    let body = if method == Method::POST {
        match Limited::new(req.into_body(), MAX_OBJECT).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("upload failed or is larger than {MAX_OBJECT} bytes: {e}\n"),
                )
            }
        }
    } else {
        Bytes::new()
    };
    let work = move || answer(&store, append_only, &method, &query, t, body);
    match tokio::task::spawn_blocking(work).await {
        Ok(r) => r,
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

fn answer(
    store: &LocalBackend,
    append_only: bool,
    method: &Method,
    query: &str,
    t: Target,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let failed = |e: anyhow::Error| {
        tracing::warn!("serve: {e:#}");
        reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n"))
    };
    match (method, t) {
        (&Method::POST, Target::Root) if query == "create=true" => match store.create() {
            Ok(()) => reply(StatusCode::OK, ""),
            // Not a store failure: the place is taken, say so.
            Err(e) => reply(StatusCode::CONFLICT, format!("{e:#}\n")),
        },
        (&Method::GET, Target::List(kind)) => match store.list(kind) {
            Ok(list) => {
                let items: Vec<_> = list
                    .into_iter()
                    .map(|(name, size)| serde_json::json!({"name": name, "size": size}))
                    .collect();
                match serde_json::to_vec(&items) {
                    Ok(v) => reply(StatusCode::OK, v),
                    Err(e) => failed(e.into()),
                }
            }
            Err(e) => failed(e),
        },
        (&Method::GET | &Method::HEAD, Target::Object(kind, name)) => {
            match store.exists(kind, &name) {
                Ok(false) => reply(
                    StatusCode::NOT_FOUND,
                    format!("{} does not exist\n", name_of(kind, &name)),
                ),
                Ok(true) if method == Method::HEAD => reply(StatusCode::OK, ""),
                Ok(true) => match store.get(kind, &name) {
                    Ok(v) => reply(StatusCode::OK, v),
                    Err(e) => failed(e),
                },
                Err(e) => failed(e),
            }
        }
        (&Method::POST, Target::Object(kind, name)) => {
            // Locks are rewritten in place by their refresher.
            if !append_only || kind == Kind::Locks {
                return match store.put(kind, &name, &body) {
                    Ok(()) => reply(StatusCode::OK, ""),
                    Err(e) => failed(e),
                };
            }
            match store.put_new(kind, &name, &body) {
                Ok(true) => reply(StatusCode::OK, ""),
                // A retried upload of the same bytes changes nothing.
                Ok(false) if store.get(kind, &name).is_ok_and(|had| had == body) => {
                    reply(StatusCode::OK, "")
                }
                Ok(false) => refused(format!(
                    "{} exists and is not overwritten",
                    name_of(kind, &name)
                )),
                Err(e) => failed(e),
            }
        }
        (&Method::DELETE, Target::Object(kind, name)) => {
            if append_only && kind != Kind::Locks {
                return refused(format!("{} is not deleted", name_of(kind, &name)));
            }
            match store.remove(kind, &name) {
                Ok(()) => reply(StatusCode::OK, ""),
                Err(e) => failed(e),
            }
        }
        _ => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not part of the Lifeboat REST protocol here\n"),
        ),
    }
}

/// Binds the address now, so a taken port is an error before anything is
/// announced.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Serves the repository on `listener` until `stop` resolves.
pub fn run(
    listener: std::net::TcpListener,
    opts: ServeOptions,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let rt = crate::runtime::get()?;
    let store = Arc::new(LocalBackend::new(&opts.root));
    let append_only = opts.append_only;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tokio::pin!(stop);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut stop => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    // A client that vanished mid-handshake is not the server's failure.
                    Err(e) => {
                        tracing::warn!("serve: accept: {e}");
                        continue;
                    }
                },
            };
            let store = store.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let store = store.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(handle(store, append_only, req).await)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await
                {
                    tracing::debug!("serve: connection from {peer}: {e}");
                }
            });
        }
    })
}

/// [`run`] until SIGINT or SIGTERM.
pub fn run_until_signal(listener: std::net::TcpListener, opts: ServeOptions) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = crate::runtime::get()?;
    let _guard = rt.enter();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    run(listener, opts, async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}
