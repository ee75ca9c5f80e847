//! Kargo's control plane as the sandbox emulates it: webhooks, controllers,
//! artifact discovery and Kargo-level faults, working on plain JSON through `hooks::Txn`.

// `hooks::ApiError` is the seam's error type and every webhook returns it by value, as the
// traits in `hooks` do; boxing it only on this side of the seam would buy nothing.
#![allow(clippy::result_large_err)]

pub mod availability;
mod control;
mod discovery;
pub mod duration;
pub mod expr;
#[cfg(test)]
mod flows;
pub mod freight;
pub mod names;
pub mod pattern;
pub mod project;
pub mod promotion;
pub(crate) mod promotions;
mod runner;
pub mod semver;
pub mod stage;
mod stages;
pub mod steps;
#[cfg(test)]
mod testkit;
pub mod urls;
pub mod util;
pub mod warehouse;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::hooks::{
    Admission, AdmissionRequest, ApiError, Control, Controller, Event, ObjectRef, Operation, Txn,
};
use steps::{SimulatedSteps, StepRunner};
use util::{GROUP, invalid_error};

/// Timing and addressing of the emulated control plane.
#[derive(Clone, Debug)]
pub struct KargoConfig {
    /// Wall time each Promotion step takes, so clients can observe `Running`.
    pub step_duration: Duration,
    /// Wall time an emulated verification (AnalysisRun) takes.
    pub verification_duration: Duration,
    /// Base URL of the external webhook server; receiver paths are appended to it.
    pub webhook_base_url: String,
}

impl Default for KargoConfig {
    fn default() -> Self {
        Self {
            step_duration: Duration::from_millis(100),
            verification_duration: Duration::from_millis(300),
            webhook_base_url: "https://kargo-webhooks.sandbox.local".to_string(),
        }
    }
}

/// Which step an injected promotion failure hits.
#[derive(Clone, Debug, PartialEq)]
pub enum StepSelector {
    /// 0-based position in the inflated step list.
    Index(usize),
    Alias(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct PromotionFault {
    pub step: StepSelector,
    pub message: String,
}

/// One artifact a registry has published, in publication order.
#[derive(Clone, Debug)]
struct Published {
    seq: u64,
    at: String,
    data: Value,
}

type Key = (String, String);

#[derive(Default)]
struct State {
    /// Armed by `fail-promotion`, keyed by (project, stage); taken by the next Promotion.
    armed_promotion_faults: HashMap<Key, PromotionFault>,
    /// Faults taken by a running Promotion, keyed by (project, promotion).
    bound_promotion_faults: HashMap<Key, PromotionFault>,
    failing_verifications: BTreeSet<Key>,
    /// Armed by `hold-promotion`, keyed by (project, stage): Promotions of the Stage stay
    /// Running at this step until `clear-faults`.
    held_steps: HashMap<Key, StepSelector>,
    /// When the current step of a running Promotion started (wall clock), by (project, name).
    step_clock: HashMap<Key, (usize, Instant)>,
    /// When a running verification started, by (project, stage) and verification id.
    verification_clock: HashMap<(String, String, String), Instant>,
    /// Creation order of Freight, to tell apart Freight discovered in the same second.
    freight_order: HashMap<Key, u64>,
    /// Everything ever published, by subscription identity (see `warehouse::subscription_identity`).
    registry: BTreeMap<String, Vec<Published>>,
    /// Projects whose stats may have changed; recomputed on the next tick so a burst of
    /// writes costs one recount rather than one per write.
    stale_projects: BTreeSet<String>,
    next_seq: u64,
    ticks: u64,
}

/// Kargo's webhooks, controllers and control commands in one value.
pub struct Kargo {
    state: Mutex<State>,
    ulids: Mutex<ulid::Generator>,
    runner: Box<dyn StepRunner>,
    config: KargoConfig,
}

impl Default for Kargo {
    fn default() -> Self {
        Self::new()
    }
}

impl Kargo {
    pub fn new() -> Self {
        Self::with_config(KargoConfig::default())
    }

    pub fn with_config(config: KargoConfig) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ulids: Mutex::new(ulid::Generator::new()),
            runner: Box::new(SimulatedSteps),
            config,
        }
    }

    /// Kargo whose promotion steps really run: Git steps against the repositories `git`
    /// serves (or local `file://` ones), file steps in a per-Promotion work directory.
    /// `tick_now` is notified when a step's work finishes, so the Promotion moves on at once.
    pub fn with_git(
        git: std::sync::Arc<crate::git::GitHost>,
        tick_now: std::sync::Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            runner: Box::new(runner::RealSteps::new(git, tick_now)),
            ..Self::new()
        }
    }

    pub fn config(&self) -> &KargoConfig {
        &self.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn new_ulid(&self) -> String {
        let mut generator = self.ulids.lock().unwrap_or_else(PoisonError::into_inner);
        match generator.generate() {
            Ok(u) => u.to_string(),
            // The monotonic counter overflowed within one millisecond; a fresh ULID still
            // sorts after earlier milliseconds.
            Err(_) => ulid::Ulid::new().to_string(),
        }
    }

    fn next_seq(&self) -> u64 {
        let mut st = self.state();
        st.next_seq += 1;
        st.next_seq
    }

    fn record_freight(&self, ns: &str, name: &str) {
        let seq = self.next_seq();
        self.state()
            .freight_order
            .entry((ns.to_string(), name.to_string()))
            .or_insert(seq);
    }

    fn freight_order(&self, freight: &Value) -> u64 {
        let key = (
            util::namespace(freight).to_string(),
            util::name(freight).to_string(),
        );
        self.state().freight_order.get(&key).copied().unwrap_or(0)
    }

    fn promotion_env<'a>(
        &'a self,
        new_ulid: &'a dyn Fn() -> String,
        order: &'a dyn Fn(&Value) -> u64,
    ) -> promotion::PromotionEnv<'a> {
        promotion::PromotionEnv {
            new_ulid,
            freight_order: order,
        }
    }

    fn admit_stage(
        &self,
        txn: &mut dyn Txn,
        req: &mut AdmissionRequest<'_>,
    ) -> Result<(), ApiError> {
        const WEBHOOK: &str = "stage.kargo.akuity.io";
        if req.operation == Operation::Delete || req.subresource.is_some() {
            return Ok(());
        }
        let name = req.name.to_string();
        let ns = req.namespace.unwrap_or_default().to_string();
        let Some(obj) = req.object.as_deref_mut() else {
            return Ok(());
        };
        stage::default(obj).map_err(|e| e.denied_by_webhook(WEBHOOK))?;
        stage::enrich_verification_requests(obj, req.old_object, req.user, req.from_control_plane);
        let schema = stage::step_schema_errors(obj);
        if !schema.is_empty() {
            return Err(invalid_error("Stage", &name, schema));
        }
        let mut errs = Vec::new();
        if req.operation == Operation::Create {
            match project::validate_project_namespace(txn, &ns) {
                Err(e) => return Err(e.denied_by_webhook(WEBHOOK)),
                Ok(Some(fe)) => errs.push(fe),
                Ok(None) => {}
            }
        }
        errs.extend(stage::validate(obj));
        if errs.is_empty() {
            Ok(())
        } else {
            Err(invalid_error("Stage", &name, errs).denied_by_webhook(WEBHOOK))
        }
    }

    fn admit_warehouse(
        &self,
        txn: &mut dyn Txn,
        req: &mut AdmissionRequest<'_>,
    ) -> Result<(), ApiError> {
        const WEBHOOK: &str = "warehouse.kargo.akuity.io";
        if req.operation == Operation::Delete || req.subresource.is_some() {
            return Ok(());
        }
        let name = req.name.to_string();
        let ns = req.namespace.unwrap_or_default().to_string();
        let Some(obj) = req.object.as_deref_mut() else {
            return Ok(());
        };
        warehouse::default(obj).map_err(|e| e.denied_by_webhook(WEBHOOK))?;
        let mut errs = Vec::new();
        if req.operation == Operation::Create {
            match project::validate_project_namespace(txn, &ns) {
                Err(e) => return Err(e.denied_by_webhook(WEBHOOK)),
                Ok(Some(fe)) => errs.push(fe),
                Ok(None) => {}
            }
        }
        errs.extend(warehouse::validate(obj));
        if errs.is_empty() {
            Ok(())
        } else {
            Err(invalid_error("Warehouse", &name, errs).denied_by_webhook(WEBHOOK))
        }
    }

    /// PromotionTask / ClusterPromotionTask webhooks: step aliases as for Stages.
    fn admit_task(
        &self,
        txn: &dyn Txn,
        kind: &str,
        webhook: &str,
        req: &AdmissionRequest<'_>,
    ) -> Result<(), ApiError> {
        if req.operation == Operation::Delete || req.subresource.is_some() {
            return Ok(());
        }
        let Some(obj) = req.object.as_deref() else {
            return Ok(());
        };
        let mut errs = Vec::new();
        // promotiontask/webhook.go `ValidateCreate`: the namespace must be a Project's, and
        // that error is listed first, with the spec's.
        if kind == "PromotionTask" && req.operation == Operation::Create {
            let ns = req.namespace.unwrap_or_default();
            match project::validate_project_namespace(txn, ns) {
                Err(e) => return Err(e.denied_by_webhook(webhook)),
                Ok(Some(fe)) => errs.push(fe),
                Ok(None) => {}
            }
        }
        errs.extend(stage::validate_step_aliases(
            "spec.steps",
            util::arr_at(obj, "spec.steps"),
        ));
        if errs.is_empty() {
            Ok(())
        } else {
            Err(invalid_error(kind, req.name, errs).denied_by_webhook(webhook))
        }
    }

    fn admit_cluster_config(&self, req: &AdmissionRequest<'_>) -> Result<(), ApiError> {
        if req.operation != Operation::Create || req.name == "cluster" {
            return Ok(());
        }
        let e = util::invalid(
            "metadata.name",
            &Value::String(req.name.to_string()),
            "name must be \"cluster\"",
        );
        Err(invalid_error("ClusterConfig", req.name, vec![e])
            .denied_by_webhook("clusterconfig.kargo.akuity.io"))
    }

    /// Routes a committed change to the controllers that watch it.
    fn dispatch(&self, txn: &mut dyn Txn, r: &ObjectRef, deleted: bool) {
        let ns = r.namespace.clone().unwrap_or_default();
        match (r.group.as_str(), r.resource.as_str()) {
            ("", "namespaces") => project::reconcile_namespace(txn, &r.name),
            // Webhook receiver paths hash the receiver's secret.
            ("", "secrets") if txn.get(GROUP, "projectconfigs", Some(&ns), &ns).is_some() => {
                project::reconcile_project_config(txn, &ns, &ns, &self.config.webhook_base_url);
            }
            (GROUP, "projects") => project::reconcile_project(txn, &r.name),
            (GROUP, "projectconfigs") => {
                project::reconcile_project_config(txn, &ns, &r.name, &self.config.webhook_base_url);
                self.reconcile_stages_in(txn, &ns, |_| true);
            }
            (GROUP, "warehouses") => {
                if !deleted {
                    self.reconcile_warehouse(txn, &ns, &r.name);
                }
                self.state().stale_projects.insert(ns);
            }
            (GROUP, "stages") => {
                self.reconcile_stage(txn, &ns, &r.name);
                self.state().stale_projects.insert(ns);
            }
            (GROUP, "freights") => {
                let origin = txn
                    .get(GROUP, "freights", Some(&ns), &r.name)
                    .map(|f| util::str_at(&f, "origin.name").to_string());
                self.reconcile_stages_in(txn, &ns, |s| match &origin {
                    Some(o) => util::arr_at(s, "spec.requestedFreight")
                        .iter()
                        .any(|q| util::str_at(q, "origin.name") == o),
                    None => true,
                });
            }
            (GROUP, "promotions") => {
                if deleted {
                    self.forget_promotion(&ns, &r.name);
                    return;
                }
                self.reconcile_promotion(txn, &ns, &r.name);
                if let Some(p) = txn.get(GROUP, "promotions", Some(&ns), &r.name) {
                    let stage = util::str_at(&p, "spec.stage").to_string();
                    self.reconcile_stage(txn, &ns, &stage);
                }
            }
            _ => {}
        }
    }

    fn reconcile_stages_in(&self, txn: &mut dyn Txn, ns: &str, filter: impl Fn(&Value) -> bool) {
        let names: Vec<String> = txn
            .list(GROUP, "stages", Some(ns))
            .iter()
            .filter(|s| filter(s))
            .map(|s| util::name(s).to_string())
            .collect();
        for n in names {
            self.reconcile_stage(txn, ns, &n);
        }
    }

    fn forget_promotion(&self, ns: &str, name: &str) {
        let key = (ns.to_string(), name.to_string());
        let mut st = self.state();
        st.step_clock.remove(&key);
        st.bound_promotion_faults.remove(&key);
        drop(st);
        self.runner.forget(ns, name);
    }
}

impl Admission for Kargo {
    fn admit(&self, txn: &mut dyn Txn, req: &mut AdmissionRequest<'_>) -> Result<(), ApiError> {
        match (req.group, req.resource) {
            (GROUP, "projects") => project::admit_project(txn, req)
                .map_err(|e| e.denied_by_webhook(project::PROJECT_WEBHOOK)),
            (GROUP, "projectconfigs") => project::admit_project_config(txn, req),
            (GROUP, "warehouses") => self.admit_warehouse(txn, req),
            (GROUP, "stages") => self.admit_stage(txn, req),
            (GROUP, "freights") => {
                let result = freight::admit(txn, req);
                if result.is_ok()
                    && req.operation == Operation::Create
                    && let Some(obj) = req.object.as_deref()
                {
                    self.record_freight(req.namespace.unwrap_or_default(), util::name(obj));
                }
                result
            }
            (GROUP, "promotions") => {
                let new_ulid = || self.new_ulid();
                let order = |f: &Value| self.freight_order(f);
                let env = self.promotion_env(&new_ulid, &order);
                promotion::admit(txn, &env, req)
            }
            (GROUP, "promotiontasks") => {
                self.admit_task(txn, "PromotionTask", "promotiontask.kargo.akuity.io", req)
            }
            (GROUP, "clusterpromotiontasks") => self.admit_task(
                txn,
                "ClusterPromotionTask",
                "clusterpromotiontask.kargo.akuity.io",
                req,
            ),
            (GROUP, "clusterconfigs") => self.admit_cluster_config(req),
            _ => Ok(()),
        }
    }
}

impl Controller for Kargo {
    fn reconcile(&self, txn: &mut dyn Txn, event: &Event) {
        match event {
            Event::Added(r) | Event::Modified(r) => self.dispatch(txn, r, false),
            Event::Deleted(r) => self.dispatch(txn, r, true),
        }
    }

    fn tick(&self, txn: &mut dyn Txn) {
        self.tick_all(txn);
    }
}

impl Control for Kargo {
    fn control(&self, txn: &mut dyn Txn, name: &str, body: &Value) -> Result<Value, ApiError> {
        self.run_command(txn, name, body)
    }
}
