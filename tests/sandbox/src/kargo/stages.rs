//! The Stage controllers (regular and control-flow): Promotion queueing and results,
//! Freight `currentlyIn` bookkeeping, health, emulated verification, auto-promotion, deletion.

use std::time::Instant;

use serde_json::{Value, json};

use super::Kargo;
use super::availability::{available_by_origin, is_control_flow, select_candidates};
use super::names::origin_key;
use super::project::auto_promotion_enabled;
use super::promotions::is_terminal;
use super::util::{
    self, FINALIZER, GROUP, add_finalizer, arr_at, condition, delete_condition, format_time,
    generation, name, parse_time, remove_finalizer, set_condition, str_at,
};
use crate::hooks::Txn;

fn verification_terminal(phase: &str) -> bool {
    matches!(
        phase,
        "Successful" | "Failed" | "Error" | "Aborted" | "Inconclusive"
    )
}

/// Promotions ordered as Kargo queues them: Running, then other non-terminal by name
/// (ULID, oldest first), then terminal by name (newest first).
fn queue_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    let rank = |p: &Value| {
        let phase = str_at(p, "status.phase");
        if phase == "Running" {
            0
        } else if !is_terminal(phase) {
            1
        } else {
            2
        }
    };
    let (ra, rb) = (rank(a), rank(b));
    ra.cmp(&rb).then_with(|| {
        if ra == 2 {
            name(b).cmp(name(a))
        } else {
            name(a).cmp(name(b))
        }
    })
}

/// `buildFreightSummary`: the Freight name for single-origin Stages, else "x/y Fulfilled".
pub fn freight_summary(requested: usize, current: Option<&Value>) -> String {
    let items = current
        .and_then(|c| c.get("items"))
        .and_then(Value::as_object);
    match items {
        None => format!("0/{requested} Fulfilled"),
        Some(m) if requested == 1 && m.len() == 1 => m
            .values()
            .next()
            .map(|r| str_at(r, "name").to_string())
            .unwrap_or_default(),
        Some(m) => format!("{}/{requested} Fulfilled", m.len()),
    }
}

fn current_collection(status: &Value) -> Option<&Value> {
    status
        .get("freightHistory")
        .and_then(Value::as_array)
        .and_then(|h| h.first())
}

fn latest_verification(status: &Value) -> Option<&Value> {
    current_collection(status)?
        .get("verificationHistory")?
        .as_array()?
        .first()
}

fn has_non_terminal_verification(status: &Value) -> bool {
    current_collection(status)
        .map(|c| {
            arr_at(c, "verificationHistory")
                .iter()
                .any(|v| !verification_terminal(str_at(v, "phase")))
        })
        .unwrap_or(false)
}

fn health_is_healthy(status: &Value) -> bool {
    str_at(status, "health.status") == "Healthy"
}

fn remove_key(v: &mut Value, key: &str) {
    if let Some(m) = v.as_object_mut() {
        m.remove(key);
    }
}

fn new_uuid() -> String {
    let bytes: [u8; 16] = rand::random();
    let h = super::names::hex(&bytes);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

struct Pass<'a> {
    ns: &'a str,
    stage: &'a Value,
    status: Value,
    generation: i64,
    now: String,
}

impl Pass<'_> {
    fn set(&mut self, kind: &str, cond_status: &str, reason: &str, message: &str) {
        set_condition(
            &mut self.status,
            kind,
            cond_status,
            reason,
            message,
            self.generation,
            &self.now,
        );
    }
}

impl Kargo {
    pub(super) fn reconcile_stage(&self, txn: &mut dyn Txn, ns: &str, stage_name: &str) {
        let Some(mut stage) = txn.get(GROUP, "stages", Some(ns), stage_name) else {
            return;
        };
        if !util::reconciled_by_default_controller(&stage) {
            return;
        }
        if util::is_deleting(&stage) {
            self.delete_stage(txn, stage);
            return;
        }
        if add_finalizer(&mut stage, FINALIZER) {
            match txn.update(stage) {
                Ok(s) => stage = s,
                Err(_) => return,
            }
        }
        let mut pass = Pass {
            ns,
            stage: &stage,
            status: stage
                .get("status")
                .cloned()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({})),
            generation: generation(&stage),
            now: format_time(txn.now()),
        };
        if is_control_flow(&stage) {
            self.control_flow(txn, &mut pass);
        } else {
            let pc = txn.get(GROUP, "projectconfigs", Some(ns), ns);
            let enabled = auto_promotion_enabled(pc.as_ref(), &stage);
            self.sync_promotions(txn, &mut pass, enabled);
            self.sync_freight(txn, &mut pass);
            assess_health(&mut pass);
            self.verify(&mut pass);
            self.mark_verified(txn, &mut pass);
            effective_holds(txn, &mut pass, enabled);
            // `AutoPromotionEnabled bool json:"autoPromotionEnabled,omitempty"`.
            if enabled {
                pass.status["autoPromotionEnabled"] = json!(true);
            } else {
                remove_key(&mut pass.status, "autoPromotionEnabled");
            }
            if enabled {
                self.auto_promote(txn, &mut pass);
            }
            summarize(&mut pass);
        }
        let mut status = pass.status;
        // regular_stages.go / control_flow_stages.go: the refresh token is recorded as handled.
        if let Some(token) = util::annotation(&stage, util::ANNOTATION_REFRESH) {
            status["lastHandledRefresh"] = json!(token);
        }
        let current = str_at(&status, "currentPromotion.name").to_string();
        if stage.get("status") != Some(&status) {
            stage["status"] = status;
            if txn.update_status(stage).is_err() {
                return;
            }
        }
        if !current.is_empty() {
            self.reconcile_promotion(txn, ns, &current);
        }
    }

    fn control_flow(&self, txn: &mut dyn Txn, pass: &mut Pass<'_>) {
        let stage_name = name(pass.stage).to_string();
        for key in [
            "freightHistory",
            "health",
            "currentPromotion",
            "lastPromotion",
            "autoPromotionHolds",
            "effectiveAutoPromotionHolds",
        ] {
            remove_key(&mut pass.status, key);
        }
        pass.status["freightSummary"] = json!("N/A");
        remove_key(&mut pass.status, "autoPromotionEnabled");
        let freight = txn.list(GROUP, "freights", Some(pass.ns));
        let now = txn.now();
        let available: Vec<Value> = available_by_origin(pass.stage, &freight, now)
            .into_values()
            .flatten()
            .cloned()
            .collect();
        for mut f in available {
            if super::availability::is_verified_in(&f, &stage_name) {
                continue;
            }
            let status = util::obj_mut(&mut f, "status");
            let verified = status.entry("verifiedIn").or_insert_with(|| json!({}));
            verified[stage_name.as_str()] = json!({"verifiedAt": pass.now});
            let _ = txn.update_status(f);
        }
        if let Some(conds) = pass
            .status
            .get_mut("conditions")
            .and_then(Value::as_array_mut)
        {
            conds.retain(|c| matches!(str_at(c, "type"), "Ready" | "Reconciling"));
        }
        delete_condition(&mut pass.status, "Reconciling");
        pass.set("Ready", "True", "Ready", "");
        pass.status["observedGeneration"] = json!(pass.generation);
    }

    fn sync_promotions(&self, txn: &mut dyn Txn, pass: &mut Pass<'_>, enabled: bool) {
        let stage_name = name(pass.stage).to_string();
        // Durable holds: cleared while auto-promotion is off, kept only for requested origins.
        let requested = requested_origins(pass.stage);
        if !enabled {
            remove_key(&mut pass.status, "autoPromotionHolds");
        } else if let Some(holds) = pass
            .status
            .get_mut("autoPromotionHolds")
            .and_then(Value::as_object_mut)
        {
            holds.retain(|k, _| requested.contains(k));
        }
        drop_empty(&mut pass.status, "autoPromotionHolds");
        let mut promos: Vec<Value> = txn
            .list(GROUP, "promotions", Some(pass.ns))
            .into_iter()
            .filter(|p| str_at(p, "spec.stage") == stage_name)
            .collect();
        if promos.is_empty() {
            delete_condition(&mut pass.status, "Promoting");
            remove_key(&mut pass.status, "currentPromotion");
            return;
        }
        promos.sort_by(queue_order);
        let highest = &promos[0];
        let highest_terminal = is_terminal(str_at(highest, "status.phase"));
        let current = str_at(&pass.status, "currentPromotion.name").to_string();
        if !current.is_empty() && (current != name(highest) || highest_terminal) {
            delete_condition(&mut pass.status, "Promoting");
            remove_key(&mut pass.status, "currentPromotion");
            let last = str_at(&pass.status, "lastPromotion.name").to_string();
            let mut fresh: Vec<&Value> = promos
                .iter()
                .filter(|p| {
                    is_terminal(str_at(p, "status.phase"))
                        && (last.is_empty() || name(p) > last.as_str())
                })
                .collect();
            fresh.sort_by(|a, b| name(a).cmp(name(b)));
            for p in fresh {
                if enabled && str_at(p, "status.phase") != "Aborted" {
                    replay_hold_intent(&mut pass.status, p, &requested);
                }
                self.record_result(pass, p);
            }
            return;
        }
        if has_non_terminal_verification(&pass.status) {
            delete_condition(&mut pass.status, "Promoting");
            return;
        }
        if current_collection(&pass.status).is_some()
            && (pass.status.get("health").is_none() || health_is_healthy(&pass.status))
        {
            let verified = latest_verification(&pass.status)
                .is_some_and(|v| verification_terminal(str_at(v, "phase")));
            if !verified {
                delete_condition(&mut pass.status, "Promoting");
                return;
            }
        }
        if !highest_terminal {
            let msg = format!(
                "Promotion {:?} is currently {}",
                name(highest),
                str_at(highest, "status.phase")
            );
            pass.set("Promoting", "True", "ActivePromotion", &msg);
            let mut reference = json!({"name": name(highest)});
            if let Some(f) = highest.pointer("/status/freight") {
                reference["freight"] = f.clone();
            }
            pass.status["currentPromotion"] = reference;
        } else {
            delete_condition(&mut pass.status, "Promoting");
        }
    }

    /// Records a finished Promotion as `lastPromotion` and, when it succeeded, its Freight
    /// as the newest `freightHistory` entry.
    fn record_result(&self, pass: &mut Pass<'_>, promo: &Value) {
        let promo_status = promo.get("status").cloned().unwrap_or_else(|| json!({}));
        let mut reference = json!({"name": name(promo), "status": promo_status});
        if let Some(f) = promo.pointer("/status/finishedAt") {
            reference["finishedAt"] = f.clone();
        }
        if let Some(f) = promo.pointer("/status/freight") {
            reference["freight"] = f.clone();
        }
        let inherited = pass
            .status
            .pointer("/lastPromotion/status/freightCollection")
            .cloned();
        if promo.pointer("/status/startedAt").is_none()
            && promo.pointer("/status/freightCollection").is_none()
            && let Some(c) = inherited
        {
            reference["status"]["freightCollection"] = c;
        }
        pass.status["lastPromotion"] = reference;
        if str_at(promo, "status.phase") != "Succeeded" {
            return;
        }
        let Some(collection) = promo.pointer("/status/freightCollection").cloned() else {
            return;
        };
        let mut history: Vec<Value> = arr_at(&pass.status, "freightHistory").to_vec();
        history.insert(0, collection);
        history.truncate(10);
        pass.status["freightHistory"] = Value::Array(history);
        remove_key(&mut pass.status, "health");
        pass.set(
            "Healthy",
            "Unknown",
            "WaitingForHealthCheck",
            "Waiting for health check to be performed after successful promotion",
        );
        pass.set(
            "Verified",
            "Unknown",
            "WaitingForVerification",
            "Waiting for verification to be performed after successful promotion",
        );
    }

    /// Freight `status.currentlyIn` follows the Stage's current Freight; leaving a Stage
    /// folds the stay into `verifiedIn[stage].longestSoak`.
    fn sync_freight(&self, txn: &mut dyn Txn, pass: &mut Pass<'_>) {
        let stage_name = name(pass.stage).to_string();
        let current: Vec<String> = current_collection(&pass.status)
            .and_then(|c| c.get("items"))
            .and_then(Value::as_object)
            .map(|m| m.values().map(|r| str_at(r, "name").to_string()).collect())
            .unwrap_or_default();
        let now = txn.now();
        for mut f in txn.list(GROUP, "freights", Some(pass.ns)) {
            let here = super::availability::is_currently_in(&f, &stage_name);
            let wanted = current.iter().any(|n| n == name(&f));
            if here && !wanted {
                let since = f
                    .pointer(&format!(
                        "/status/currentlyIn/{}/since",
                        escape(&stage_name)
                    ))
                    .and_then(Value::as_str)
                    .and_then(parse_time);
                let status = util::obj_mut(&mut f, "status");
                if let Some(c) = status.get_mut("currentlyIn").and_then(Value::as_object_mut) {
                    c.remove(&stage_name);
                }
                if let (Some(since), Some(v)) = (
                    since,
                    status
                        .get_mut("verifiedIn")
                        .and_then(|v| v.get_mut(&stage_name)),
                ) {
                    let soak = i128::from(now.as_second() - since.as_second()) * 1_000_000_000;
                    let previous = super::duration::parse(str_at(v, "longestSoak")).unwrap_or(0);
                    if soak > previous {
                        v["longestSoak"] = json!(super::duration::format(soak));
                    }
                }
                omit_empty_freight_maps(&mut f);
                let _ = txn.update_status(f);
            } else if wanted && !here {
                let status = util::obj_mut(&mut f, "status");
                let c = status.entry("currentlyIn").or_insert_with(|| json!({}));
                c[stage_name.as_str()] = json!({"since": pass.now});
                let _ = txn.update_status(f);
            }
        }
    }

    /// Emulated verification: without `spec.verification` the Freight verifies at once; with
    /// it, a run takes `verification_duration` and fails while a `fail-verification` fault is set.
    fn verify(&self, pass: &mut Pass<'_>) {
        let stage_name = name(pass.stage).to_string();
        if current_collection(&pass.status).is_none() {
            pass.set(
                "Verified",
                "Unknown",
                "NoFreight",
                "Stage has no current Freight to verify",
            );
            return;
        }
        if pass.status.get("currentPromotion").is_some() {
            return;
        }
        let key = (pass.ns.to_string(), stage_name.clone());
        let reverify =
            super::stage::verification_request(pass.stage, super::stage::ANNOTATION_REVERIFY);
        let abort = super::stage::verification_request(pass.stage, util::ANNOTATION_ABORT);
        let latest = latest_verification(&pass.status).cloned();
        // regular_stages.go `verifyStageFreight`: a terminal verification is run again only
        // when a `reverify` request names it.
        let rerun = latest.as_ref().and_then(|l| {
            let id = str_at(l, "id");
            reverify
                .as_ref()
                .filter(|(want, _, _)| verification_terminal(str_at(l, "phase")) && want == id)
        });
        if let Some((_, actor, _)) = rerun {
            if health_is_healthy(&pass.status) {
                let actor = actor.clone();
                self.start_verification(pass, &key, Some(&actor));
            }
            set_verified_condition(pass);
            return;
        }
        if let Some(latest) = latest {
            if !verification_terminal(str_at(&latest, "phase")) {
                let id = str_at(&latest, "id").to_string();
                // `abortVerification`: the request for this verification ends it as Failed
                // (the AnalysisRun is told to terminate), attributed to who asked.
                if let Some((_, actor, _)) = abort.as_ref().filter(|(want, _, _)| *want == id) {
                    let mut done = latest.clone();
                    if !actor.is_empty() {
                        done["actor"] = json!(actor);
                    }
                    done["phase"] = json!("Failed");
                    done["message"] = json!("Verification aborted by user");
                    done["finishTime"] = json!(pass.now);
                    self.state()
                        .verification_clock
                        .remove(&(key.0.clone(), key.1.clone(), id));
                    replace_latest_verification(&mut pass.status, done);
                    set_verified_condition(pass);
                    return;
                }
                let clock_key = (key.0.clone(), key.1.clone(), id.clone());
                let started = *self
                    .state()
                    .verification_clock
                    .entry(clock_key.clone())
                    .or_insert_with(Instant::now);
                if started.elapsed() >= self.config.verification_duration {
                    let failing = self.state().failing_verifications.contains(&key);
                    let mut done = latest.clone();
                    done["finishTime"] = json!(pass.now);
                    if failing {
                        done["phase"] = json!("Failed");
                        done["message"] =
                            json!("Verification failed: fault injected by fail-verification");
                    } else {
                        done["phase"] = json!("Successful");
                    }
                    self.state().verification_clock.remove(&clock_key);
                    replace_latest_verification(&mut pass.status, done);
                }
            }
        } else if health_is_healthy(&pass.status) {
            self.start_verification(pass, &key, None);
        }
        set_verified_condition(pass);
    }

    /// A new verification of the current Freight (`actor` for a re-verification someone
    /// asked for): emulated as running for `verification_duration` with `spec.verification`,
    /// successful at once without.
    fn start_verification(&self, pass: &mut Pass<'_>, key: &(String, String), actor: Option<&str>) {
        let mut vi = json!({"id": new_uuid(), "startTime": pass.now});
        if pass
            .stage
            .pointer("/spec/verification")
            .is_some_and(|v| !v.is_null())
        {
            if let Some(a) = actor.filter(|a| !a.is_empty()) {
                vi["actor"] = json!(a);
            }
            vi["phase"] = json!("Running");
            let id = str_at(&vi, "id").to_string();
            self.state()
                .verification_clock
                .insert((key.0.clone(), key.1.clone(), id), Instant::now());
        } else {
            vi["phase"] = json!("Successful");
            vi["finishTime"] = json!(pass.now);
        }
        replace_latest_verification(&mut pass.status, vi);
    }

    fn mark_verified(&self, txn: &mut dyn Txn, pass: &mut Pass<'_>) {
        if !health_is_healthy(&pass.status) || has_non_terminal_verification(&pass.status) {
            return;
        }
        let Some(latest) = latest_verification(&pass.status) else {
            return;
        };
        if str_at(latest, "phase") != "Successful" {
            return;
        }
        let verified_at = str_at(latest, "finishTime").to_string();
        let stage_name = name(pass.stage).to_string();
        let names: Vec<String> = current_collection(&pass.status)
            .and_then(|c| c.get("items"))
            .and_then(Value::as_object)
            .map(|m| m.values().map(|r| str_at(r, "name").to_string()).collect())
            .unwrap_or_default();
        for n in names {
            let Some(mut f) = txn.get(GROUP, "freights", Some(pass.ns), &n) else {
                continue;
            };
            if super::availability::is_verified_in(&f, &stage_name) {
                continue;
            }
            let status = util::obj_mut(&mut f, "status");
            let v = status.entry("verifiedIn").or_insert_with(|| json!({}));
            v[stage_name.as_str()] = json!({"verifiedAt": verified_at});
            let _ = txn.update_status(f);
        }
    }

    /// Creates a Promotion, as the control plane would, for each origin whose candidate
    /// Freight is neither current, in flight, nor the subject of a failed attempt.
    fn auto_promote(&self, txn: &mut dyn Txn, pass: &mut Pass<'_>) {
        let stage_name = name(pass.stage).to_string();
        let freight = txn.list(GROUP, "freights", Some(pass.ns));
        let candidates = select_candidates(pass.stage, &freight, txn.now(), |f: &Value| {
            self.freight_order(f)
        });
        let promos: Vec<Value> = txn
            .list(GROUP, "promotions", Some(pass.ns))
            .into_iter()
            .filter(|p| str_at(p, "spec.stage") == stage_name)
            .collect();
        let last = str_at(&pass.status, "lastPromotion.name").to_string();
        for req in arr_at(pass.stage, "spec.requestedFreight") {
            let origin = req.get("origin").map(origin_key).unwrap_or_default();
            // Never auto-promote an origin with an effective hold.
            if pass
                .status
                .pointer("/effectiveAutoPromotionHolds")
                .and_then(|h| h.get(&origin))
                .is_some()
            {
                continue;
            }
            let Some(candidate) = candidates.get(&origin) else {
                continue;
            };
            let cand = name(candidate);
            let in_current = current_collection(&pass.status)
                .and_then(|c| c.get("items"))
                .and_then(|m| m.get(&origin))
                .is_some_and(|r| str_at(r, "name") == cand);
            let awaiting = str_at(&pass.status, "currentPromotion.freight.name") == cand
                && pass
                    .status
                    .pointer("/currentPromotion/freight/origin")
                    .map(origin_key)
                    .as_deref()
                    == Some(&origin);
            if in_current || awaiting {
                continue;
            }
            let for_candidate: Vec<&Value> = promos
                .iter()
                .filter(|p| str_at(p, "spec.freight") == cand)
                .collect();
            let unprocessed = for_candidate.iter().any(|p| {
                let phase = str_at(p, "status.phase");
                !is_terminal(phase)
                    || (phase == "Succeeded" && (last.is_empty() || name(p) > last.as_str()))
            });
            if unprocessed {
                continue;
            }
            let newest_terminal = for_candidate
                .iter()
                .filter(|p| is_terminal(str_at(p, "status.phase")))
                .max_by(|a, b| name(a).cmp(name(b)));
            if newest_terminal.is_some_and(|p| str_at(p, "status.phase") != "Succeeded") {
                continue;
            }
            let mut promo = json!({
                "apiVersion": util::API_VERSION,
                "kind": "Promotion",
                "metadata": {"namespace": pass.ns, "generateName": "promo-"},
                "spec": {"stage": stage_name, "freight": cand},
            });
            let new_ulid = || self.new_ulid();
            let order = |f: &Value| self.freight_order(f);
            let env = self.promotion_env(&new_ulid, &order);
            if super::promotion::default_create(txn, &env, &mut promo, pass.ns, "", true).is_ok() {
                let _ = txn.create(promo);
            }
        }
    }

    /// Deletion: clear this Stage from Freight `verifiedIn`/`approvedFor`, drop its
    /// Promotions (as garbage collection of owned objects would), release the finalizer.
    fn delete_stage(&self, txn: &mut dyn Txn, mut stage: Value) {
        if !util::has_finalizer(&stage, FINALIZER) {
            return;
        }
        let ns = util::namespace(&stage).to_string();
        let stage_name = name(&stage).to_string();
        for mut f in txn.list(GROUP, "freights", Some(&ns)) {
            let mut changed = false;
            for field in ["verifiedIn", "approvedFor"] {
                if let Some(m) = f
                    .pointer_mut(&format!("/status/{field}"))
                    .and_then(Value::as_object_mut)
                {
                    changed |= m.remove(&stage_name).is_some();
                }
            }
            if changed {
                omit_empty_freight_maps(&mut f);
                let _ = txn.update_status(f);
            }
        }
        for p in txn.list(GROUP, "promotions", Some(&ns)) {
            let owned = arr_at(&p, "metadata.ownerReferences")
                .iter()
                .any(|o| str_at(o, "kind") == "Stage" && str_at(o, "name") == stage_name);
            if owned {
                let _ = txn.delete(GROUP, "promotions", Some(&ns), name(&p));
            }
        }
        self.state()
            .failing_verifications
            .remove(&(ns.clone(), stage_name.clone()));
        if remove_finalizer(&mut stage, FINALIZER) {
            let _ = txn.update(stage);
        }
    }

    /// Time-driven work: running steps and verifications every tick; a slower sweep over
    /// Stages whose outcome depends on time (soak, auto-promotion) or that have work queued.
    pub(super) fn tick_all(&self, txn: &mut dyn Txn) {
        let (running, verifying, sweep, projects) = {
            let mut st = self.state();
            st.ticks += 1;
            let projects = std::mem::take(&mut st.stale_projects);
            let running: Vec<(String, String)> = st.step_clock.keys().cloned().collect();
            let verifying: Vec<(String, String)> = st
                .verification_clock
                .keys()
                .map(|(ns, s, _)| (ns.clone(), s.clone()))
                .collect();
            (running, verifying, st.ticks.is_multiple_of(20), projects)
        };
        for p in projects {
            super::project::reconcile_project(txn, &p);
        }
        for (ns, p) in running {
            self.reconcile_promotion(txn, &ns, &p);
        }
        for (ns, s) in verifying {
            self.reconcile_stage(txn, &ns, &s);
        }
        if !sweep {
            return;
        }
        let stages = txn.list(GROUP, "stages", None);
        for s in stages {
            let st = s.get("status").cloned().unwrap_or(Value::Null);
            let busy = st.get("autoPromotionEnabled").and_then(Value::as_bool) == Some(true)
                || st.get("currentPromotion").is_some()
                || has_non_terminal_verification(&st)
                || util::is_deleting(&s)
                || condition(&st, "Promoting").is_some();
            if busy {
                self.reconcile_stage(txn, util::namespace(&s), name(&s));
            }
        }
        for p in txn.list(GROUP, "promotions", None) {
            if !is_terminal(str_at(&p, "status.phase")) {
                let stage = str_at(&p, "spec.stage").to_string();
                self.reconcile_stage(txn, util::namespace(&p), &stage);
            }
        }
    }
}

fn requested_origins(stage: &Value) -> Vec<String> {
    arr_at(stage, "spec.requestedFreight")
        .iter()
        .filter_map(|r| r.get("origin").map(origin_key))
        .collect()
}

/// Kargo writes Freight status with a merge patch of the Go struct, whose maps are
/// `omitempty`: a map emptied by the controller is removed, not stored as `{}`.
fn omit_empty_freight_maps(freight: &mut Value) {
    if let Some(status) = freight.get_mut("status") {
        for key in ["currentlyIn", "verifiedIn", "approvedFor"] {
            drop_empty(status, key);
        }
    }
}

/// Removes `key` from `status` when it is an empty map, as `omitempty` does.
fn drop_empty(status: &mut Value, key: &str) {
    if status
        .get(key)
        .and_then(Value::as_object)
        .is_some_and(|m| m.is_empty())
    {
        remove_key(status, key);
    }
}

/// `newAutoPromotionHold`: the Promotion that established a hold, as a paper trail.
fn new_hold(promo: &Value, origin: &str) -> Value {
    let (kind, origin_name) = origin.split_once('/').unwrap_or(("Warehouse", origin));
    let mut hold = json!({
        "freightName": str_at(promo, "spec.freight"),
        "origin": {"kind": kind, "name": origin_name},
        "promotionName": name(promo),
    });
    if let Some(actor) = util::annotation(promo, util::ANNOTATION_CREATE_ACTOR)
        && !actor.is_empty()
    {
        hold["actor"] = json!(actor);
    }
    let created = str_at(promo, "metadata.creationTimestamp");
    if !created.is_empty() {
        hold["createdAt"] = json!(created);
    }
    hold
}

/// The replay in Kargo's `syncPromotions` (pkg/controller/stages/regular_stages.go, v1.11.2):
/// a finished Promotion with hold intent records a hold for its (requested) origin; one with
/// resume intent releases it.
fn replay_hold_intent(status: &mut Value, promo: &Value, requested: &[String]) {
    if let Some(origin) =
        util::annotation(promo, util::ANNOTATION_AUTO_PROMOTION_HOLD).filter(|o| !o.is_empty())
    {
        if requested.iter().any(|r| r == origin) {
            let hold = new_hold(promo, origin);
            let holds = util::obj_mut(status, "autoPromotionHolds");
            holds.insert(origin.to_string(), hold);
        }
    } else if let Some(origin) =
        util::annotation(promo, util::ANNOTATION_AUTO_PROMOTION_RESUME).filter(|o| !o.is_empty())
    {
        if let Some(holds) = status
            .get_mut("autoPromotionHolds")
            .and_then(Value::as_object_mut)
        {
            holds.remove(origin);
        }
        drop_empty(status, "autoPromotionHolds");
    }
}

/// Kargo's `computeEffectiveAutoPromotionHolds`: the durable holds overlaid, per requested
/// origin, with the newest non-aborted hold or resume intent among Promotions newer than the
/// last one recorded. None while auto-promotion is disabled.
fn effective_holds(txn: &dyn Txn, pass: &mut Pass<'_>, enabled: bool) {
    if !enabled {
        remove_key(&mut pass.status, "effectiveAutoPromotionHolds");
        return;
    }
    let mut effective = pass
        .status
        .get("autoPromotionHolds")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let stage_name = name(pass.stage);
    let last = str_at(&pass.status, "lastPromotion.name").to_string();
    let promos: Vec<Value> = txn
        .list(GROUP, "promotions", Some(pass.ns))
        .into_iter()
        .filter(|p| str_at(p, "spec.stage") == stage_name)
        .filter(|p| str_at(p, "status.phase") != "Aborted")
        .filter(|p| last.is_empty() || name(p) > last.as_str())
        .collect();
    for origin in requested_origins(pass.stage) {
        let newest = promos
            .iter()
            .filter_map(|p| {
                let hold = util::annotation(p, util::ANNOTATION_AUTO_PROMOTION_HOLD)
                    == Some(origin.as_str());
                let resume = util::annotation(p, util::ANNOTATION_AUTO_PROMOTION_RESUME)
                    == Some(origin.as_str());
                (hold || resume).then_some((p, hold))
            })
            .max_by(|a, b| name(a.0).cmp(name(b.0)));
        match newest {
            None => {}
            Some((p, true)) => {
                effective.insert(origin.clone(), new_hold(p, &origin));
            }
            Some((_, false)) => {
                effective.remove(&origin);
            }
        }
    }
    if effective.is_empty() {
        remove_key(&mut pass.status, "effectiveAutoPromotionHolds");
    } else {
        pass.status["effectiveAutoPromotionHolds"] = Value::Object(effective);
    }
}

/// JSON-pointer escaping of a single path segment.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn replace_latest_verification(status: &mut Value, vi: Value) {
    let Some(current) = status
        .get_mut("freightHistory")
        .and_then(Value::as_array_mut)
        .and_then(|h| h.first_mut())
    else {
        return;
    };
    let id = str_at(&vi, "id").to_string();
    let mut stack: Vec<Value> = arr_at(current, "verificationHistory").to_vec();
    match stack.iter_mut().find(|v| str_at(v, "id") == id) {
        Some(existing) => *existing = vi,
        None => stack.insert(0, vi),
    }
    stack.truncate(10);
    current["verificationHistory"] = Value::Array(stack);
}

fn set_verified_condition(pass: &mut Pass<'_>) {
    let Some(collection) = current_collection(&pass.status) else {
        return;
    };
    let history = arr_at(collection, "verificationHistory").to_vec();
    if history.is_empty() {
        return;
    }
    if history.iter().any(|v| str_at(v, "phase") == "Successful") {
        pass.set("Verified", "True", "Verified", "Freight has been verified");
        return;
    }
    let latest = &history[0];
    let message = str_at(latest, "message").to_string();
    match str_at(latest, "phase") {
        "Pending" => pass.set(
            "Verified",
            "Unknown",
            "VerificationPending",
            "Freight is pending verification",
        ),
        "Running" => pass.set(
            "Verified",
            "Unknown",
            "VerificationRunning",
            "Freight is currently being verified",
        ),
        "Failed" => pass.set("Verified", "False", "VerificationFailed", &message),
        "Error" => pass.set("Verified", "False", "VerificationError", &message),
        "Aborted" => pass.set("Verified", "False", "VerificationAborted", &message),
        "Inconclusive" => pass.set("Verified", "Unknown", "VerificationInconclusive", &message),
        other => {
            let m = format!("Freight verification is in an unknown phase: {other}");
            pass.set("Verified", "Unknown", "UnknownVerificationPhase", &m);
        }
    }
}

fn assess_health(pass: &mut Pass<'_>) {
    if pass.status.get("currentPromotion").is_some() {
        pass.set(
            "Healthy",
            "Unknown",
            "ActivePromotion",
            "Stage has a Promotion in progress",
        );
        pass.status["health"] = json!({"status": "Unknown", "issues": ["Cannot assess health because a Promotion is currently in progress"]});
        return;
    }
    let last_phase = str_at(&pass.status, "lastPromotion.status.phase").to_string();
    if pass.status.get("lastPromotion").is_none() {
        pass.set(
            "Healthy",
            "Unknown",
            "NoFreight",
            "Stage has no current Freight",
        );
        remove_key(&mut pass.status, "health");
        return;
    }
    if last_phase != "Succeeded" {
        let reason = format!("LastPromotion{last_phase}");
        pass.set(
            "Healthy",
            "Unknown",
            &reason,
            "Cannot assess health because last Promotion did not succeed",
        );
        pass.status["health"] = json!({"status": "Unknown", "issues": ["Cannot assess health because last Promotion did not succeed"]});
        return;
    }
    let checks = arr_at(&pass.status, "lastPromotion.status.healthChecks").len();
    pass.status["health"] = json!({"status": "Healthy"});
    pass.set(
        "Healthy",
        "True",
        "Healthy",
        &format!("Stage is healthy (performed {checks} health checks)"),
    );
}

/// `summarizeConditions`: Ready follows Promoting, then the last Promotion, then Healthy,
/// then Verified.
fn summarize(pass: &mut Pass<'_>) {
    let requested = arr_at(pass.stage, "spec.requestedFreight").len();
    pass.status["freightSummary"] =
        json!(freight_summary(requested, current_collection(&pass.status)));
    let cond = |status: &Value, kind: &str| condition(status, kind).cloned();
    if let Some(p) = cond(&pass.status, "Promoting") {
        pass.set(
            "Ready",
            "False",
            str_at(&p, "reason"),
            str_at(&p, "message"),
        );
        return;
    }
    let last_phase = str_at(&pass.status, "lastPromotion.status.phase").to_string();
    if is_terminal(&last_phase) && last_phase != "Succeeded" {
        let message = str_at(&pass.status, "lastPromotion.status.message").to_string();
        pass.set(
            "Ready",
            "False",
            &format!("LastPromotion{last_phase}"),
            &message,
        );
        return;
    }
    match cond(&pass.status, "Healthy") {
        Some(h) if str_at(&h, "status") == "True" => {}
        Some(h) => {
            pass.set(
                "Ready",
                "False",
                str_at(&h, "reason"),
                str_at(&h, "message"),
            );
            return;
        }
        None => {
            pass.set("Ready", "False", "Unhealthy", "Stage is not healthy");
            return;
        }
    }
    match cond(&pass.status, "Verified") {
        Some(v) if str_at(&v, "status") == "True" => {
            pass.set("Ready", "True", str_at(&v, "reason"), str_at(&v, "message"));
            delete_condition(&mut pass.status, "Reconciling");
            pass.status["observedGeneration"] = json!(pass.generation);
        }
        Some(v) => pass.set(
            "Ready",
            "False",
            str_at(&v, "reason"),
            str_at(&v, "message"),
        ),
        None => pass.set(
            "Ready",
            "False",
            "PendingVerification",
            "Stage is not verified",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_formats() {
        assert_eq!(freight_summary(1, None), "0/1 Fulfilled");
        let one = json!({"items": {"Warehouse/w": {"name": "abc"}}});
        assert_eq!(freight_summary(1, Some(&one)), "abc");
        assert_eq!(freight_summary(2, Some(&one)), "1/2 Fulfilled");
    }

    #[test]
    fn queue_orders_running_pending_then_terminal() {
        let p = |n: &str, phase: &str| json!({"metadata": {"name": n}, "status": {"phase": phase}});
        let mut v = [
            p("s.01a", "Succeeded"),
            p("s.01c", "Pending"),
            p("s.01b", "Pending"),
            p("s.01d", "Failed"),
            p("s.01e", "Running"),
        ];
        v.sort_by(queue_order);
        let names: Vec<&str> = v.iter().map(name).collect();
        assert_eq!(names, vec!["s.01e", "s.01b", "s.01c", "s.01d", "s.01a"]);
    }

    #[test]
    fn uuids_look_like_v4() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
