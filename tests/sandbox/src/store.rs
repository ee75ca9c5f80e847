//! The object store: JSON objects keyed by resource, namespace and name, the global
//! resourceVersion counter, watch fan-out with a replay window, and the controllers' commit log.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::hooks::{Event, ObjectRef};
use crate::resources::{self, ResourceDef};

/// How many past events a watch may resume from before it gets 410 Gone.
const HISTORY: usize = 10_000;
const FANOUT: usize = 8_192;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// A committed change as watchers see it.
#[derive(Debug)]
pub struct WatchEvent {
    pub rv: u64,
    pub kind: EventKind,
    pub res: &'static ResourceDef,
    pub object: Arc<Value>,
    /// The object before the change, so a filtered watch can tell an object leaving its selection.
    pub prev: Option<Arc<Value>>,
}

type Key = (&'static str, &'static str, String, String);

fn key(res: &'static ResourceDef, ns: Option<&str>, name: &str) -> Key {
    (
        res.group,
        res.plural,
        ns.unwrap_or_default().to_string(),
        name.to_string(),
    )
}

pub fn meta_str<'v>(obj: &'v Value, field: &str) -> Option<&'v str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

pub struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Arc<WatchEvent>>,
    /// Every event with a resourceVersion above this is still in `history`.
    floor: u64,
    tx: broadcast::Sender<Arc<WatchEvent>>,
    pending: Vec<Event>,
    /// Whether commits are queued for controllers (only while Kargo runs).
    pub record_events: bool,
    pub dirty: bool,
}

impl Store {
    pub fn new(rv: u64, objects: Vec<Value>) -> Store {
        let (tx, _) = broadcast::channel(FANOUT);
        let mut store = Store {
            objects: BTreeMap::new(),
            rv,
            history: VecDeque::new(),
            floor: rv,
            tx,
            pending: Vec::new(),
            record_events: false,
            dirty: false,
        };
        for obj in objects {
            let api_version = obj
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
            if let Some(res) = resources::by_kind(api_version, kind) {
                let k = key(
                    res,
                    meta_str(&obj, "namespace"),
                    meta_str(&obj, "name").unwrap_or_default(),
                );
                store.objects.insert(k, obj);
            }
        }
        store
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, res: &'static ResourceDef, ns: Option<&str>, name: &str) -> Option<&Value> {
        self.objects.get(&key(res, ns, name))
    }

    /// Objects of `res`, in one namespace or all, ordered by namespace and name.
    pub fn list<'s>(
        &'s self,
        res: &'static ResourceDef,
        ns: Option<&str>,
    ) -> impl Iterator<Item = &'s Value> + 's {
        let ns = ns.map(str::to_string);
        let start = (
            res.group,
            res.plural,
            ns.clone().unwrap_or_default(),
            String::new(),
        );
        self.objects
            .range(start..)
            .take_while(move |((g, p, n, _), _)| {
                *g == res.group && *p == res.plural && ns.as_ref().is_none_or(|want| want == n)
            })
            .map(|(_, v)| v)
    }

    /// Every stored object with its resource.
    pub fn all(&self) -> impl Iterator<Item = (&'static ResourceDef, &Value)> {
        self.objects
            .iter()
            .filter_map(|((g, p, _, _), v)| resources::by_plural(g, p).map(|r| (r, v)))
    }

    /// Whether any namespaced object lives in `ns`.
    pub fn namespace_in_use(&self, ns: &str) -> bool {
        self.objects.keys().any(|(_, _, n, _)| n == ns)
    }

    fn commit(
        &mut self,
        kind: EventKind,
        res: &'static ResourceDef,
        mut obj: Value,
        prev: Option<Arc<Value>>,
    ) -> Value {
        self.rv += 1;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::from(self.rv.to_string()));
        }
        let namespace = meta_str(&obj, "namespace").unwrap_or_default().to_string();
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        let event = Arc::new(WatchEvent {
            rv: self.rv,
            kind,
            res,
            object: Arc::new(obj.clone()),
            prev,
        });
        if self.history.len() == HISTORY
            && let Some(old) = self.history.pop_front()
        {
            self.floor = old.rv;
        }
        self.history.push_back(event.clone());
        // Nobody listening is fine: watches subscribe when they start.
        let _ = self.tx.send(event);
        if self.record_events {
            let r = ObjectRef {
                group: res.group.to_string(),
                resource: res.plural.to_string(),
                namespace: (!namespace.is_empty()).then_some(namespace),
                name,
            };
            self.pending.push(match kind {
                EventKind::Added => Event::Added(r),
                EventKind::Modified => Event::Modified(r),
                EventKind::Deleted => Event::Deleted(r),
            });
        }
        self.dirty = true;
        obj
    }

    /// Stores a new object, assigning its resourceVersion.
    pub fn insert(&mut self, res: &'static ResourceDef, obj: Value) -> Value {
        let obj = self.commit(EventKind::Added, res, obj, None);
        let k = key(
            res,
            meta_str(&obj, "namespace"),
            meta_str(&obj, "name").unwrap_or_default(),
        );
        self.objects.insert(k, obj.clone());
        obj
    }

    /// Replaces a stored object, assigning a new resourceVersion.
    pub fn replace(&mut self, res: &'static ResourceDef, obj: Value) -> Value {
        let k = key(
            res,
            meta_str(&obj, "namespace"),
            meta_str(&obj, "name").unwrap_or_default(),
        );
        let prev = self.objects.get(&k).cloned().map(Arc::new);
        let obj = self.commit(EventKind::Modified, res, obj, prev);
        self.objects.insert(k, obj.clone());
        obj
    }

    /// Removes an object; the DELETED event carries it with the deletion's resourceVersion.
    pub fn remove(
        &mut self,
        res: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let obj = self.objects.remove(&key(res, ns, name))?;
        let prev = Some(Arc::new(obj.clone()));
        Some(self.commit(EventKind::Deleted, res, obj, prev))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.tx.subscribe()
    }

    /// Events after `rv`, or `Err(oldest resumable version)` when they are no longer kept.
    pub fn since(&self, rv: u64) -> Result<Vec<Arc<WatchEvent>>, u64> {
        if rv < self.floor {
            return Err(self.floor);
        }
        Ok(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// Queues events for controllers (e.g. a resync when they start).
    pub fn queue(&mut self, events: Vec<Event>) {
        self.pending.extend(events);
    }

    /// Takes the queued commits for controllers, coalescing repeats of the same object.
    pub fn take_pending(&mut self) -> Vec<Event> {
        let mut out: Vec<Event> = Vec::with_capacity(self.pending.len());
        for e in self.pending.drain(..) {
            let r = event_ref(&e);
            match out.iter_mut().find(|o| event_ref(o) == r) {
                Some(existing) if matches!(e, Event::Deleted(_)) => *existing = e,
                Some(_) => {}
                None => out.push(e),
            }
        }
        out
    }

    /// A snapshot for persistence: the counter and every object.
    pub fn snapshot(&self) -> (u64, Vec<Value>) {
        (self.rv, self.objects.values().cloned().collect())
    }
}

fn event_ref(e: &Event) -> &ObjectRef {
    match e {
        Event::Added(r) | Event::Modified(r) | Event::Deleted(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(name: &str, ns: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}})
    }

    #[test]
    fn versions_increase_and_history_replays() {
        let res = resources::by_plural("", "configmaps").unwrap();
        let mut s = Store::new(10, Vec::new());
        let a = s.insert(res, cm("a", "x"));
        assert_eq!(meta_str(&a, "resourceVersion"), Some("11"));
        s.insert(res, cm("b", "y"));
        s.replace(res, cm("a", "x"));
        assert_eq!(s.list(res, Some("x")).count(), 1);
        assert_eq!(s.list(res, None).count(), 2);
        let gone = s.remove(res, Some("y"), "b").unwrap();
        assert_eq!(meta_str(&gone, "resourceVersion"), Some("14"));
        let replay = s.since(12).unwrap();
        assert_eq!(
            replay.iter().map(|e| e.kind).collect::<Vec<_>>(),
            vec![EventKind::Modified, EventKind::Deleted]
        );
        assert_eq!(s.since(9).err(), Some(10));
    }

    #[test]
    fn pending_events_coalesce_per_object() {
        let res = resources::by_plural("", "configmaps").unwrap();
        let mut s = Store::new(0, Vec::new());
        s.record_events = true;
        s.insert(res, cm("a", "x"));
        s.replace(res, cm("a", "x"));
        s.insert(res, cm("b", "x"));
        s.remove(res, Some("x"), "a");
        let p = s.take_pending();
        assert_eq!(p.len(), 2);
        assert!(matches!(&p[0], Event::Deleted(r) if r.name == "a"));
        assert!(matches!(&p[1], Event::Added(r) if r.name == "b"));
    }
}
