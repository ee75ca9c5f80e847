//! Watches: newline-delimited JSON events, chunked and flushed per event, resumable from a
//! resourceVersion (410 Gone when too old), with bookmarks and streaming initial lists.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::hooks::ApiError;
use crate::resources::ResourceDef;
use crate::router::Body;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::{Shared, lock};
use crate::status;
use crate::store::{EventKind, WatchEvent, meta_str};
use crate::table::{self, Include};

const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

/// What one watch asks for.
pub struct WatchSpec {
    pub res: &'static ResourceDef,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub send_initial_events: bool,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
    pub table: Option<Include>,
}

impl WatchSpec {
    fn selects(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| meta_str(obj, "namespace") == Some(ns))
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    /// How `event` looks through this watch's filter (objects entering or leaving the
    /// selection show up as ADDED or DELETED).
    fn translate(&self, event: &WatchEvent) -> Option<&'static str> {
        if event.res != self.res {
            return None;
        }
        let now = self.selects(&event.object);
        let before = event.prev.as_deref().is_some_and(|p| self.selects(p));
        match event.kind {
            EventKind::Added => now.then_some("ADDED"),
            EventKind::Deleted => before.then_some("DELETED"),
            EventKind::Modified => match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        }
    }

    fn frame(&self, kind: &str, obj: &Value, now: jiff::Timestamp) -> Bytes {
        let object = match self.table {
            Some(include) => {
                let rv = meta_str(obj, "resourceVersion").unwrap_or_default();
                table::table(self.res, &[obj], rv, include, now)
            }
            None => obj.clone(),
        };
        line(&json!({"type": kind, "object": object}))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object =
            json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": meta});
        line(&json!({"type": "BOOKMARK", "object": object}))
    }
}

fn line(v: &Value) -> Bytes {
    let mut buf = serde_json::to_vec(v).unwrap_or_default();
    buf.push(b'\n');
    Bytes::from(buf)
}

fn error_frame(e: &ApiError) -> Bytes {
    line(&json!({"type": "ERROR", "object": status::body(e)}))
}

/// Starts a watch: the initial events are computed and the live feed subscribed under the
/// lock, so nothing is missed or repeated; the body then streams from a task.
pub fn start(shared: &Arc<Shared>, spec: WatchSpec) -> Result<Body, ApiError> {
    let now = shared.clock.now();
    let mut initial = Vec::new();
    let (feed, start_rv, expired) = {
        let state = lock(&shared.state);
        let store = &state.store;
        let current = store.resource_version();
        let requested = match spec.resource_version.as_deref() {
            None | Some("") | Some("0") => None,
            Some(rv) => Some(
                rv.parse::<u64>()
                    .map_err(|_| status::bad_request(format!("invalid resource version {rv:?}")))?,
            ),
        };
        let mut expired = false;
        match requested {
            Some(rv) if !spec.send_initial_events => match store.since(rv) {
                Ok(events) => {
                    for e in events {
                        if let Some(kind) = spec.translate(&e) {
                            initial.push(spec.frame(kind, &e.object, now));
                        }
                    }
                }
                Err(oldest) => {
                    let e = status::expired(format!("too old resource version: {rv} ({oldest})"));
                    initial.push(error_frame(&e));
                    expired = true;
                }
            },
            _ => {
                for obj in store
                    .list(spec.res, spec.namespace.as_deref())
                    .filter(|o| spec.selects(o))
                {
                    initial.push(spec.frame("ADDED", obj, now));
                }
                if spec.send_initial_events {
                    initial.push(spec.bookmark(current, true));
                }
            }
        }
        (store.subscribe(), current, expired)
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let shutdown = shared.shutdown.clone();
    let clock = shared.clock.clone();
    tokio::spawn(async move {
        for frame in initial {
            if tx.send(frame).await.is_err() {
                return;
            }
        }
        if !expired {
            pump(spec, feed, start_rv, tx, shutdown, clock).await;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Ok(Body::new(StreamBody::new(stream)))
}

async fn pump(
    spec: WatchSpec,
    mut feed: broadcast::Receiver<Arc<WatchEvent>>,
    mut last_rv: u64,
    tx: mpsc::Sender<Bytes>,
    shutdown: tokio_util::sync::CancellationToken,
    clock: Arc<crate::clock::Clock>,
) {
    let deadline = spec.timeout.map(|t| Instant::now() + t);
    let expire = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expire);
    let mut bookmarks = tokio::time::interval_at(Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tx.closed() => return,
            _ = &mut expire => return,
            _ = bookmarks.tick(), if spec.bookmarks => spec.bookmark(last_rv, false),
            event = feed.recv() => match event {
                Ok(e) => {
                    if e.rv <= last_rv {
                        continue;
                    }
                    last_rv = e.rv;
                    match spec.translate(&e) {
                        Some(kind) => spec.frame(kind, &e.object, clock.now()),
                        None => continue,
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let e = status::expired(format!("too old resource version: {last_rv}"));
                    let _ = tx.send(error_frame(&e)).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}
