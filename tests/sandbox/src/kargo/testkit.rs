//! A minimal in-memory `Txn` for unit tests of Kargo's controllers: objects keyed by
//! resource, finalizer-aware deletion, generations, an event queue and a settable clock.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

use super::Kargo;
use super::util::{self, GROUP, str_at};
use crate::hooks::{
    Admission, AdmissionRequest, ApiError, Controller, Event, ObjectRef, Operation, Txn,
};
use crate::rbac::{Access, Identity};

type Key = (String, String, String, String);

pub struct FakeTxn {
    pub objects: BTreeMap<Key, Value>,
    pub events: VecDeque<Event>,
    pub now: jiff::Timestamp,
    pub denied: Vec<String>,
    rv: u64,
}

fn resource_of(obj: &Value) -> (String, String) {
    let group = str_at(obj, "apiVersion")
        .split_once('/')
        .map(|(g, _)| g.to_string())
        .unwrap_or_default();
    let kind = str_at(obj, "kind");
    let plural = match kind {
        "Namespace" => "namespaces".to_string(),
        "Secret" => "secrets".to_string(),
        "Freight" => "freights".to_string(),
        k => format!("{}s", k.to_lowercase()),
    };
    (group, plural)
}

fn key_of(obj: &Value) -> Key {
    let (g, r) = resource_of(obj);
    (
        g,
        r,
        util::namespace(obj).to_string(),
        util::name(obj).to_string(),
    )
}

impl Default for FakeTxn {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeTxn {
    pub fn new() -> Self {
        Self {
            objects: BTreeMap::new(),
            events: VecDeque::new(),
            now: "2024-01-01T00:00:00Z".parse().expect("valid timestamp"),
            denied: Vec::new(),
            rv: 0,
        }
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    fn event_ref(key: &Key) -> ObjectRef {
        ObjectRef {
            group: key.0.clone(),
            resource: key.1.clone(),
            namespace: if key.2.is_empty() {
                None
            } else {
                Some(key.2.clone())
            },
            name: key.3.clone(),
        }
    }

    fn finish_delete(&mut self, key: &Key) {
        self.objects.remove(key);
        self.events.push_back(Event::Deleted(Self::event_ref(key)));
        if key.1 == "namespaces" {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| k.2 == key.3)
                .cloned()
                .collect();
            for k in inside {
                let _ = self.delete(&k.0.clone(), &k.1.clone(), Some(&k.2.clone()), &k.3.clone());
            }
        }
    }

    /// Creates through Kargo's admission, as a client would.
    pub fn client_create(
        &mut self,
        kargo: &Kargo,
        mut obj: Value,
        user: &str,
    ) -> Result<Value, ApiError> {
        let (group, resource) = resource_of(&obj);
        let ns = util::namespace(&obj).to_string();
        let name = util::name(&obj).to_string();
        {
            let mut req = AdmissionRequest {
                operation: Operation::Create,
                group: &group,
                resource: &resource,
                subresource: None,
                namespace: if ns.is_empty() { None } else { Some(&ns) },
                name: &name,
                object: Some(&mut obj),
                old_object: None,
                user,
                groups: &[],
                from_control_plane: false,
                dry_run: false,
            };
            kargo.admit(self, &mut req)?;
        }
        if util::name(&obj).is_empty() {
            let generate = str_at(&obj, "metadata.generateName").to_string();
            obj["metadata"]["name"] = json!(format!("{generate}{}", self.rv + 1));
        }
        self.create(obj)
    }

    /// Updates (or, with `status`, writes the status subresource) through admission.
    pub fn client_update(
        &mut self,
        kargo: &Kargo,
        mut obj: Value,
        user: &str,
        status: bool,
    ) -> Result<Value, ApiError> {
        let key = key_of(&obj);
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| util::not_found(&key.1, &key.0, &key.3))?;
        {
            let mut req = AdmissionRequest {
                operation: Operation::Update,
                group: &key.0,
                resource: &key.1,
                subresource: if status { Some("status") } else { None },
                namespace: if key.2.is_empty() { None } else { Some(&key.2) },
                name: &key.3,
                object: Some(&mut obj),
                old_object: Some(&old),
                user,
                groups: &[],
                from_control_plane: false,
                dry_run: false,
            };
            kargo.admit(self, &mut req)?;
        }
        if status {
            self.update_status(obj)
        } else {
            self.update(obj)
        }
    }

    pub fn client_delete(
        &mut self,
        kargo: &Kargo,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        name: &str,
        user: &str,
    ) -> Result<(), ApiError> {
        let key = (
            group.to_string(),
            resource.to_string(),
            ns.unwrap_or_default().to_string(),
            name.to_string(),
        );
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| util::not_found(resource, group, name))?;
        {
            let mut req = AdmissionRequest {
                operation: Operation::Delete,
                group,
                resource,
                subresource: None,
                namespace: ns,
                name,
                object: None,
                old_object: Some(&old),
                user,
                groups: &[],
                from_control_plane: false,
                dry_run: false,
            };
            kargo.admit(self, &mut req)?;
        }
        self.delete(group, resource, ns, name)
    }

    /// Delivers queued events until the controllers stop writing (bounded).
    pub fn settle(&mut self, kargo: &Kargo) {
        for _ in 0..10_000 {
            let Some(e) = self.events.pop_front() else {
                return;
            };
            kargo.reconcile(self, &e);
        }
        panic!("controllers did not settle");
    }

    /// Ticks the controllers for `millis` of wall time, settling events in between.
    pub fn run_for(&mut self, kargo: &Kargo, millis: u64) {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(millis);
        while std::time::Instant::now() < until {
            kargo.tick(self);
            self.settle(kargo);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Ticks and settles until `done` holds (true) or 10 s of wall time pass (false), so
    /// tests wait for outcomes rather than for fixed delays on a busy machine.
    pub fn run_until(&mut self, kargo: &Kargo, done: impl Fn(&FakeTxn) -> bool) -> bool {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < until {
            if done(self) {
                return true;
            }
            kargo.tick(self);
            self.settle(kargo);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        done(self)
    }

    pub fn obj(&self, resource: &str, ns: &str, name: &str) -> Option<&Value> {
        let group = if matches!(resource, "namespaces" | "secrets") {
            ""
        } else {
            GROUP
        };
        self.objects.get(&(
            group.to_string(),
            resource.to_string(),
            ns.to_string(),
            name.to_string(),
        ))
    }

    pub fn all(&self, resource: &str, ns: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| k.1 == resource && k.2 == ns)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

impl Txn for FakeTxn {
    fn get(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let key = (
            group.to_string(),
            resource.to_string(),
            namespace.unwrap_or_default().to_string(),
            name.to_string(),
        );
        self.objects.get(&key).cloned()
    }

    fn list(&self, group: &str, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| k.0 == group && k.1 == resource && namespace.is_none_or(|n| k.2 == n))
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn create(&mut self, mut object: Value) -> Result<Value, ApiError> {
        let key = key_of(&object);
        if key.3.is_empty() {
            return Err(ApiError::new(
                422,
                "Invalid",
                "name or generateName is required",
            ));
        }
        if self.objects.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} {:?} already exists", key.1, key.3),
            ));
        }
        if !key.2.is_empty()
            && !self.objects.contains_key(&(
                String::new(),
                "namespaces".into(),
                String::new(),
                key.2.clone(),
            ))
        {
            return Err(util::not_found("namespaces", "", &key.2));
        }
        let rv = self.next_rv();
        let meta = util::obj_mut(&mut object, "metadata");
        meta.insert("resourceVersion".into(), json!(rv));
        meta.insert("uid".into(), json!(format!("uid-{rv}")));
        meta.insert("generation".into(), json!(1));
        meta.insert(
            "creationTimestamp".into(),
            json!(util::format_time(self.now)),
        );
        if let Some(m) = object.as_object_mut() {
            m.remove("status");
        }
        self.objects.insert(key.clone(), object.clone());
        self.events.push_back(Event::Added(Self::event_ref(&key)));
        Ok(object)
    }

    fn update(&mut self, mut object: Value) -> Result<Value, ApiError> {
        let key = key_of(&object);
        let Some(old) = self.objects.get(&key).cloned() else {
            return Err(util::not_found(&key.1, &key.0, &key.3));
        };
        let rv = self.next_rv();
        let gen_ = util::generation(&old) + i64::from(old.get("spec") != object.get("spec"));
        let meta = util::obj_mut(&mut object, "metadata");
        meta.insert("resourceVersion".into(), json!(rv));
        meta.insert("generation".into(), json!(gen_));
        if let Some(ts) = old.pointer("/metadata/deletionTimestamp") {
            meta.insert("deletionTimestamp".into(), ts.clone());
        }
        match old.get("status") {
            Some(s) => object["status"] = s.clone(),
            None => {
                if let Some(m) = object.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        if util::is_deleting(&object) && util::arr_at(&object, "metadata.finalizers").is_empty() {
            self.finish_delete(&key);
            return Ok(object);
        }
        self.objects.insert(key.clone(), object.clone());
        if object != old {
            self.events
                .push_back(Event::Modified(Self::event_ref(&key)));
        }
        Ok(object)
    }

    fn update_status(&mut self, object: Value) -> Result<Value, ApiError> {
        let key = key_of(&object);
        let Some(mut stored) = self.objects.get(&key).cloned() else {
            return Err(util::not_found(&key.1, &key.0, &key.3));
        };
        let changed = stored.get("status") != object.get("status");
        stored["status"] = object.get("status").cloned().unwrap_or(Value::Null);
        let rv = self.next_rv();
        util::obj_mut(&mut stored, "metadata").insert("resourceVersion".into(), json!(rv));
        self.objects.insert(key.clone(), stored.clone());
        if changed {
            self.events
                .push_back(Event::Modified(Self::event_ref(&key)));
        }
        Ok(stored)
    }

    fn delete(
        &mut self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ApiError> {
        let key = (
            group.to_string(),
            resource.to_string(),
            namespace.unwrap_or_default().to_string(),
            name.to_string(),
        );
        let Some(mut obj) = self.objects.get(&key).cloned() else {
            return Err(util::not_found(resource, group, name));
        };
        if util::arr_at(&obj, "metadata.finalizers").is_empty() {
            self.finish_delete(&key);
            return Ok(());
        }
        if !util::is_deleting(&obj) {
            util::obj_mut(&mut obj, "metadata").insert(
                "deletionTimestamp".into(),
                json!(util::format_time(self.now)),
            );
            self.objects.insert(key.clone(), obj);
            self.events
                .push_back(Event::Modified(Self::event_ref(&key)));
            if resource == "namespaces" {
                let inside: Vec<Key> = self
                    .objects
                    .keys()
                    .filter(|k| k.2 == name)
                    .cloned()
                    .collect();
                for k in inside {
                    let _ =
                        self.delete(&k.0.clone(), &k.1.clone(), Some(&k.2.clone()), &k.3.clone());
                }
            }
        }
        Ok(())
    }

    fn now(&self) -> jiff::Timestamp {
        self.now
    }

    fn can(&self, who: &Identity, _access: &Access<'_>) -> bool {
        !self.denied.contains(&who.name)
    }
}
