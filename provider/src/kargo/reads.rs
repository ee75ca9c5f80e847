//! Reads shared by everything one provider process plans: each object or list that many
//! resources need is requested once, and concurrent callers wait for the same request.
//!
//! What a write or a wait in a namespace may have changed is dropped from the cache when it
//! ends, so nothing planned after a write sees what was read before it. The cache lives as
//! long as its client, which is one Terraform command's provider process; nothing is kept on
//! disk or across processes. The cluster's clock is kept here too, taken from the `Date`
//! header of answers the client received anyway.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::error::{Error, Result};
use super::types::Kind;

/// How long a `Date` header stands for the cluster's clock (advanced by the local monotonic
/// clock meanwhile) before a fresh answer is wanted.
pub const CLOCK_MAX_AGE: Duration = Duration::from_secs(30);

/// What one shared read is about: an object (`name`), or a list (`name` is `None`), with the
/// list's label selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReadKey {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub selector: Option<String>,
}

impl ReadKey {
    /// One object.
    pub fn object(kind: Kind, namespace: Option<&str>, name: &str) -> Self {
        Self {
            kind,
            namespace: namespace.map(str::to_string),
            name: Some(name.to_string()),
            selector: None,
        }
    }

    /// A list of `kind` in `namespace` (all namespaces when `None`).
    pub fn list(kind: Kind, namespace: Option<&str>, selector: Option<&str>) -> Self {
        Self {
            kind,
            namespace: namespace.map(str::to_string),
            name: None,
            selector: selector.map(str::to_string),
        }
    }
}

type Shared = Arc<dyn Any + Send + Sync>;
type Cell = Arc<OnceCell<std::result::Result<Shared, Error>>>;

/// The cluster's clock as last seen: a `Date` header and when its answer arrived.
#[derive(Clone, Copy, Debug)]
struct Observed {
    date: jiff::Timestamp,
    at: Instant,
}

impl Observed {
    fn now(&self) -> jiff::Timestamp {
        let elapsed = jiff::SignedDuration::try_from(self.at.elapsed()).unwrap_or_default();
        self.date.checked_add(elapsed).unwrap_or(self.date)
    }
}

/// The per-process cache of shared reads (see the module documentation).
#[derive(Default)]
pub struct SharedReads {
    entries: Mutex<HashMap<ReadKey, Cell>>,
    /// Bumped by every invalidation, so that an answer requested before one is not stored
    /// after it.
    generation: AtomicU64,
    clock: Mutex<Option<Observed>>,
}

impl std::fmt::Debug for SharedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("SharedReads")
            .field("entries", &entries)
            .finish()
    }
}

impl SharedReads {
    /// The value for `key`: read by `read` the first time, then shared. Callers that ask
    /// while the read is under way wait for it and get its outcome, failures included; a
    /// failure is not kept, so a later caller reads again.
    pub async fn get_or_read<T, F, Fut>(&self, key: ReadKey, read: F) -> Result<T>
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            entries.entry(key.clone()).or_default().clone()
        };
        let outcome = cell
            .get_or_init(|| async { read().await.map(|v| Arc::new(v) as Shared) })
            .await;
        match outcome {
            Ok(value) => value.downcast_ref::<T>().cloned().ok_or_else(|| {
                Error::Other(format!(
                    "the shared read of {key:?} holds another type than asked for"
                ))
            }),
            Err(err) => {
                let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
                if entries.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                    entries.remove(&key);
                }
                Err(err.clone())
            }
        }
    }

    /// The current generation, to pass to [`SharedReads::store`] with what is read next.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Keeps `value`, read fresh by someone who did not need the cache, for the shared
    /// readers that come after; unless something was invalidated since `generation`, the
    /// moment the read began.
    pub fn store<T: Send + Sync + 'static>(&self, key: ReadKey, value: T, generation: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if self.generation() != generation {
            return;
        }
        let cell = OnceCell::new_with(Some(Ok(Arc::new(value) as Shared)));
        entries.insert(key, Arc::new(cell));
    }

    /// Drops what was read in `namespace` (everything when `None`: a cluster-scoped write
    /// may change what any namespace holds). Reads under way finish for those already
    /// waiting on them; later callers read again.
    pub fn invalidate(&self, namespace: Option<&str>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        match namespace {
            None => entries.clear(),
            Some(ns) => entries.retain(|key, _| key.namespace.as_deref() != Some(ns)),
        }
    }

    /// Records the `Date` of an answer that arrived at `at`. Of the answers seen within
    /// [`CLOCK_MAX_AGE`], the one that puts the clock latest is kept: a `Date` has whole
    /// seconds and is stamped before the answer travels, so each one is behind the server's
    /// clock by up to a second plus the trip, never ahead of it.
    pub fn observe_date(&self, date: jiff::Timestamp, at: Instant) {
        let seen = Observed { date, at };
        let mut clock = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        let keep =
            clock.is_some_and(|old| old.at.elapsed() < CLOCK_MAX_AGE && old.now() > seen.now());
        if !keep {
            *clock = Some(seen);
        }
    }

    /// The cluster's clock from a `Date` seen within [`CLOCK_MAX_AGE`], if any.
    pub fn server_now(&self) -> Option<jiff::Timestamp> {
        let clock = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        clock
            .filter(|c| c.at.elapsed() < CLOCK_MAX_AGE)
            .map(|c| c.now())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn stage(name: &str) -> ReadKey {
        ReadKey::object(Kind::Stage, Some("shop"), name)
    }

    /// A read that counts how often it ran and answers `value` once `release` is notified.
    async fn counted(
        runs: &AtomicUsize,
        release: &tokio::sync::Notify,
        value: &str,
    ) -> Result<String> {
        runs.fetch_add(1, Ordering::SeqCst);
        release.notified().await;
        Ok(value.to_string())
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_read() {
        let reads = SharedReads::default();
        let runs = AtomicUsize::new(0);
        let release = tokio::sync::Notify::new();
        let callers =
            (0..20).map(|_| reads.get_or_read(stage("dev"), || counted(&runs, &release, "v1")));
        let all = futures::future::join_all(callers);
        let waiting = async {
            // Every caller is waiting on the one read before it answers.
            tokio::task::yield_now().await;
            release.notify_waiters();
        };
        let (answers, ()) = tokio::join!(all, waiting);
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one read for 20 callers");
        assert!(answers.iter().all(|a| a.as_deref().ok() == Some("v1")));
        // Later callers are served from the cache; another object is another read.
        let again: String = reads
            .get_or_read(stage("dev"), || async { Ok("v2".to_string()) })
            .await
            .unwrap();
        assert_eq!(again, "v1");
        let other: String = reads
            .get_or_read(stage("prod"), || async { Ok("p".to_string()) })
            .await
            .unwrap();
        assert_eq!(other, "p");
    }

    #[tokio::test]
    async fn invalidation_drops_the_namespace_and_reads_again() {
        let reads = SharedReads::default();
        let read = |v: &'static str| move || async move { Ok::<_, Error>(v.to_string()) };
        let other_ns = ReadKey::object(Kind::Stage, Some("other"), "dev");
        let list = ReadKey::list(Kind::Freight, Some("shop"), None);
        assert_eq!(
            reads.get_or_read(stage("dev"), read("v1")).await.unwrap(),
            "v1"
        );
        assert_eq!(
            reads.get_or_read(list.clone(), read("l1")).await.unwrap(),
            "l1"
        );
        assert_eq!(
            reads
                .get_or_read(other_ns.clone(), read("o1"))
                .await
                .unwrap(),
            "o1"
        );
        reads.invalidate(Some("shop"));
        assert_eq!(
            reads.get_or_read(stage("dev"), read("v2")).await.unwrap(),
            "v2"
        );
        assert_eq!(
            reads.get_or_read(list.clone(), read("l2")).await.unwrap(),
            "l2"
        );
        assert_eq!(
            reads
                .get_or_read(other_ns.clone(), read("o2"))
                .await
                .unwrap(),
            "o1",
            "another namespace keeps what it read"
        );
        reads.invalidate(None);
        assert_eq!(reads.get_or_read(other_ns, read("o3")).await.unwrap(), "o3");
    }

    #[tokio::test]
    async fn a_read_under_way_when_invalidated_is_not_kept() {
        let reads = SharedReads::default();
        let runs = AtomicUsize::new(0);
        let release = tokio::sync::Notify::new();
        let early = reads.get_or_read(stage("dev"), || counted(&runs, &release, "before"));
        let write_then_read = async {
            tokio::task::yield_now().await;
            // A write ends while the early read is in flight.
            reads.invalidate(Some("shop"));
            release.notify_waiters();
            reads
                .get_or_read(stage("dev"), || async { Ok("after".to_string()) })
                .await
        };
        let (early, late) = tokio::join!(early, write_then_read);
        assert_eq!(early.unwrap(), "before", "its own waiters get what it read");
        assert_eq!(late.unwrap(), "after", "callers after the write read again");
    }

    #[tokio::test]
    async fn failures_are_shared_by_waiters_but_not_kept() {
        let reads = SharedReads::default();
        let failing = || async { Err::<String, _>(Error::Other("boom".into())) };
        let err = reads.get_or_read(stage("dev"), failing).await.unwrap_err();
        assert_eq!(err.to_string(), "boom");
        let ok: String = reads
            .get_or_read(stage("dev"), || async { Ok("v".to_string()) })
            .await
            .unwrap();
        assert_eq!(ok, "v", "the next caller reads again");
    }

    #[tokio::test]
    async fn fresh_reads_are_stored_unless_invalidated_since() {
        let reads = SharedReads::default();
        let unused = || async { Ok::<String, Error>("read".into()) };
        let generation = reads.generation();
        reads.store(stage("dev"), "fresh".to_string(), generation);
        assert_eq!(
            reads.get_or_read(stage("dev"), unused).await.unwrap(),
            "fresh"
        );
        let generation = reads.generation();
        reads.invalidate(Some("shop"));
        reads.store(stage("dev"), "stale".to_string(), generation);
        assert_eq!(
            reads.get_or_read(stage("dev"), unused).await.unwrap(),
            "read"
        );
    }

    #[test]
    fn the_clock_keeps_the_latest_date_and_ages() {
        let reads = SharedReads::default();
        assert_eq!(reads.server_now(), None, "nothing seen yet");
        let t0: jiff::Timestamp = "2025-06-01T00:00:00Z".parse().unwrap();
        let now = Instant::now();
        reads.observe_date(t0, now);
        let seen = reads.server_now().unwrap();
        assert!(
            seen >= t0 && seen < t0 + jiff::SignedDuration::from_secs(1),
            "{seen}"
        );
        // A Date one second later from an answer that arrived at the same moment wins;
        // an earlier one does not replace it.
        let t1 = t0 + jiff::SignedDuration::from_secs(1);
        reads.observe_date(t1, now);
        reads.observe_date(t0, now);
        assert!(reads.server_now().unwrap() >= t1);
        // A Date older than the maximum age no longer counts.
        let reads = SharedReads::default();
        if let Some(long_ago) = now.checked_sub(CLOCK_MAX_AGE + Duration::from_secs(1)) {
            reads.observe_date(t0, long_ago);
            assert_eq!(reads.server_now(), None);
        }
    }
}
