//! The Promotion controller: queueing behind the Stage's current Promotion, Pending →
//! Running → terminal, step-by-step progress through the `StepRunner`, faults and aborts.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::expr::{Scope, alias_namespace};
use super::promotion::abort_request;
use super::steps::{BUILTIN_STEPS, StepContext, StepOutcome, unregistered_message};
use super::util::{self, ANNOTATION_ABORT, GROUP, annotation, arr_at, format_time, str_at};
use super::{Kargo, StepSelector};
use crate::hooks::Txn;

pub fn is_terminal(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "Errored" | "Aborted")
}

/// Severity order Kargo uses to pick a Promotion's final phase from its steps.
fn severity(status: &str) -> u8 {
    match status {
        "Succeeded" => 0,
        "Skipped" => 1,
        "Running" => 2,
        "Aborted" => 3,
        "Failed" => 4,
        _ => 5,
    }
}

/// A Freight as a `FreightReference` (name, origin and artifacts).
pub fn freight_reference(freight: &Value) -> Value {
    let mut r = Map::new();
    r.insert("name".to_string(), json!(util::name(freight)));
    for key in ["origin", "commits", "images", "charts", "artifacts"] {
        if let Some(v) = freight.get(key).filter(|v| !v.is_null()) {
            r.insert(key.to_string(), v.clone());
        }
    }
    Value::Object(r)
}

/// `FreightCollection.UpdateOrPush`: the id is the SHA-1 of the sorted Freight names.
pub fn collection_with(mut items: Map<String, Value>, reference: Value) -> Value {
    let origin = reference
        .get("origin")
        .map(super::names::origin_key)
        .unwrap_or_default();
    items.insert(origin, reference);
    let mut names: Vec<&str> = items.values().map(|r| str_at(r, "name")).collect();
    names.sort_unstable();
    let id = {
        use sha1::Digest as _;
        super::names::hex(&sha1::Sha1::digest(names.join(",").as_bytes()))
    };
    json!({"id": id, "items": items})
}

impl Kargo {
    /// Brings one Promotion forward as far as it can go right now.
    pub(super) fn reconcile_promotion(&self, txn: &mut dyn Txn, ns: &str, name: &str) {
        let Some(promo) = txn.get(GROUP, "promotions", Some(ns), name) else {
            self.forget_promotion(ns, name);
            return;
        };
        if !util::reconciled_by_default_controller(&promo) {
            return;
        }
        let phase = str_at(&promo, "status.phase").to_string();
        if is_terminal(&phase) || util::is_deleting(&promo) {
            self.forget_promotion(ns, name);
            return;
        }
        let abort = annotation(&promo, ANNOTATION_ABORT).and_then(abort_request);
        if let Some(req) =
            abort.filter(|r| r.get("action").and_then(Value::as_str) == Some("terminate"))
        {
            self.terminate(txn, promo, &req);
            return;
        }
        let mut promo = promo;
        if phase.is_empty() {
            promo["status"] = merge_status(&promo, json!({"phase": "Pending"}));
            match txn.update_status(promo) {
                Ok(p) => promo = p,
                Err(_) => return,
            }
        }
        let stage_name = str_at(&promo, "spec.stage").to_string();
        let Some(stage) = txn.get(GROUP, "stages", Some(ns), &stage_name) else {
            return;
        };
        if str_at(&stage, "status.currentPromotion.name") != name {
            return;
        }
        if str_at(&promo, "status.phase") != "Running" {
            let Some(freight) =
                txn.get(GROUP, "freights", Some(ns), str_at(&promo, "spec.freight"))
            else {
                let msg = format!(
                    "Freight {:?} not found in namespace {ns:?}",
                    str_at(&promo, "spec.freight")
                );
                self.finish(txn, promo, "Errored", &msg);
                return;
            };
            if !super::availability::is_available(&stage, &freight, txn.now()) {
                let msg = format!(
                    "Freight {:?} is not available to Stage {stage_name:?} in namespace {ns:?}",
                    util::name(&freight)
                );
                self.finish(txn, promo, "Errored", &msg);
                return;
            }
            let reference = freight_reference(&freight);
            let collection = self.target_collection(&stage, reference.clone());
            let now = format_time(txn.now());
            promo["status"] = merge_status(
                &promo,
                json!({"phase": "Running", "startedAt": now, "freight": reference, "freightCollection": collection,
                       "currentStep": 0}),
            );
            match txn.update_status(promo) {
                Ok(p) => promo = p,
                Err(_) => return,
            }
            let mut st = self.state();
            let key = (ns.to_string(), stage_name.clone());
            if let Some(fault) = st.armed_promotion_faults.remove(&key) {
                st.bound_promotion_faults
                    .insert((ns.to_string(), name.to_string()), fault);
            }
        }
        self.advance(txn, promo, &stage_name);
    }

    /// The collection a Promotion targets: for multi-origin Stages, what the last Promotion
    /// delivered for the other requested origins, plus the new Freight.
    fn target_collection(&self, stage: &Value, reference: Value) -> Value {
        let reqs = arr_at(stage, "spec.requestedFreight");
        let mut items = Map::new();
        if reqs.len() > 1
            && let Some(last) =
                stage.pointer("/status/lastPromotion/status/freightCollection/items")
        {
            for req in reqs {
                let origin = req
                    .get("origin")
                    .map(super::names::origin_key)
                    .unwrap_or_default();
                if let Some(r) = last.get(&origin) {
                    items.insert(origin, r.clone());
                }
            }
        }
        collection_with(items, reference)
    }

    /// Runs steps until one needs more (wall) time or the Promotion ends.
    fn advance(&self, txn: &mut dyn Txn, mut promo: Value, stage_name: &str) {
        let ns = util::namespace(&promo).to_string();
        let name = util::name(&promo).to_string();
        let key = (ns.clone(), name.clone());
        let steps: Vec<Value> = arr_at(&promo, "spec.steps").to_vec();
        let mut metas: Vec<Value> = arr_at(&promo, "status.stepExecutionMetadata").to_vec();
        let mut state = promo
            .pointer("/status/state")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut i = promo
            .pointer("/status/currentStep")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        let original = promo.get("status").cloned();
        let freight = txn
            .get(GROUP, "freights", Some(&ns), str_at(&promo, "spec.freight"))
            .unwrap_or(Value::Null);
        let mut waiting = false;
        while i < steps.len() {
            let step = &steps[i];
            let alias = super::promotion::step_alias(step, i);
            if metas.len() <= i {
                let mut meta = json!({"alias": alias});
                if step.get("continueOnError").and_then(Value::as_bool) == Some(true) {
                    meta["continueOnError"] = json!(true);
                }
                metas.push(meta);
            }
            let now = format_time(txn.now());
            if is_done(&metas[i]) {
                i += 1;
                continue;
            }
            if metas[i].get("startedAt").is_none() {
                let scope = Scope::of(&*txn, &promo, &state, &metas[..i]);
                let meta = &mut metas[i];
                match scope.should_skip(step, i) {
                    Err(e) => {
                        meta["status"] = json!("Errored");
                        meta["message"] = json!(format!(
                            "error checking if step {alias:?} should be skipped: {e}"
                        ));
                        i += 1;
                        continue;
                    }
                    Ok(true) => {
                        meta["status"] = json!("Skipped");
                        i += 1;
                        continue;
                    }
                    Ok(false) => {}
                }
                let kind = str_at(step, "uses");
                if !BUILTIN_STEPS.contains(&kind) {
                    meta["status"] = json!("Errored");
                    meta["message"] = json!(unregistered_message(kind));
                    i += 1;
                    continue;
                }
                meta["startedAt"] = json!(now);
                meta["status"] = json!("Running");
                self.state()
                    .step_clock
                    .insert(key.clone(), (i, Instant::now()));
            }
            let started = {
                let mut st = self.state();
                match st.step_clock.get(&key) {
                    Some((idx, at)) if *idx == i => *at,
                    _ => {
                        let at = Instant::now();
                        st.step_clock.insert(key.clone(), (i, at));
                        at
                    }
                }
            };
            let mut vars: Vec<Value> = arr_at(&promo, "spec.vars").to_vec();
            vars.extend(arr_at(step, "vars").iter().cloned());
            let ctx = StepContext {
                txn: &*txn,
                object: &promo,
                metas: &metas,
                project: &ns,
                stage: stage_name,
                promotion: &name,
                freight: &freight,
                vars,
                state: &state,
                alias: &alias,
                index: i,
            };
            let paced = self.runner.paced(&ctx);
            if (paced && started.elapsed() < self.config.step_duration)
                || self.is_held(&ns, stage_name, i, &alias)
            {
                waiting = true;
                break;
            }
            let outcome = match self.fault_for(&key, i, &alias) {
                Some(message) => StepOutcome::Failed(message),
                None => self.runner.run(&ctx, step),
            };
            let meta = &mut metas[i];
            match outcome {
                StepOutcome::Running => {
                    waiting = true;
                    break;
                }
                StepOutcome::Waiting { output } => {
                    propagate_output(&mut state, step, &alias, output);
                    waiting = true;
                    break;
                }
                StepOutcome::Succeeded { output, message } => {
                    meta["status"] = json!("Succeeded");
                    if message.is_empty() {
                        if let Some(m) = meta.as_object_mut() {
                            m.remove("message");
                        }
                    } else {
                        meta["message"] = json!(message);
                    }
                    meta["finishedAt"] = json!(now);
                    propagate_output(&mut state, step, &alias, output);
                }
                StepOutcome::Skipped { output } => {
                    meta["status"] = json!("Skipped");
                    meta["finishedAt"] = json!(now);
                    propagate_output(&mut state, step, &alias, output);
                }
                StepOutcome::Failed(m) => {
                    meta["status"] = json!("Failed");
                    meta["message"] = json!(format!("step {alias:?}: {m}"));
                    meta["finishedAt"] = json!(now);
                }
                StepOutcome::FailedWith { message, output } => {
                    meta["status"] = json!("Failed");
                    meta["message"] = json!(format!("step {alias:?}: {message}"));
                    meta["finishedAt"] = json!(now);
                    propagate_output(&mut state, step, &alias, output);
                }
                StepOutcome::Unrecoverable(m) => {
                    meta["status"] = json!("Errored");
                    meta["message"] = json!(format!(
                        "an unrecoverable error occurred: error running step {alias:?}: {m}"
                    ));
                    meta["finishedAt"] = json!(now);
                }
                StepOutcome::Invalid(m) => {
                    meta["status"] = json!("Errored");
                    meta["message"] = json!(m);
                }
                StepOutcome::Errored(m) => {
                    let count = meta.get("errorCount").and_then(Value::as_u64).unwrap_or(0) + 1;
                    let threshold = step
                        .pointer("/retry/errorThreshold")
                        .and_then(Value::as_u64)
                        .filter(|t| *t > 0)
                        .unwrap_or(1);
                    let message = format!("error running step {alias:?}: {m}");
                    meta["status"] = json!("Errored");
                    meta["errorCount"] = json!(count);
                    if count >= threshold {
                        meta["message"] = json!(format!(
                            "step {alias:?} met error threshold of {threshold}: {message}"
                        ));
                        meta["finishedAt"] = json!(now);
                    } else {
                        meta["message"] = json!(format!("{message}; step will be retried"));
                        waiting = true;
                        break;
                    }
                }
            }
            i += 1;
        }
        let mut patch = json!({
            "stepExecutionMetadata": metas,
            "currentStep": i.min(steps.len().saturating_sub(1)),
            "state": state,
        });
        if !waiting {
            let (phase, message) = final_phase(
                &steps,
                patch["stepExecutionMetadata"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
            );
            patch["phase"] = json!(phase);
            if !message.is_empty() {
                patch["message"] = json!(message);
            }
            patch["finishedAt"] = json!(format_time(txn.now()));
            self.forget_promotion(&ns, &name);
        }
        promo["status"] = merge_status(&promo, patch);
        if promo.get("status") != original.as_ref() {
            let _ = txn.update_status(promo);
        }
    }

    /// Whether `hold-promotion` keeps step `i` of the Stage's Promotions running.
    fn is_held(&self, ns: &str, stage: &str, i: usize, alias: &str) -> bool {
        self.state()
            .held_steps
            .get(&(ns.to_string(), stage.to_string()))
            .is_some_and(|step| match step {
                StepSelector::Index(n) => *n == i,
                StepSelector::Alias(a) => a == alias,
            })
    }

    /// The injected failure for step `i` of this Promotion, consumed when it fires.
    fn fault_for(&self, key: &(String, String), i: usize, alias: &str) -> Option<String> {
        let mut st = self.state();
        let hit = st
            .bound_promotion_faults
            .get(key)
            .is_some_and(|f| match &f.step {
                StepSelector::Index(n) => *n == i,
                StepSelector::Alias(a) => a == alias,
            });
        if hit {
            st.bound_promotion_faults.remove(key).map(|f| f.message)
        } else {
            None
        }
    }

    fn finish(&self, txn: &mut dyn Txn, mut promo: Value, phase: &str, message: &str) {
        let now = format_time(txn.now());
        promo["status"] = merge_status(
            &promo,
            json!({"phase": phase, "message": message, "finishedAt": now}),
        );
        self.forget_promotion(util::namespace(&promo), util::name(&promo));
        let _ = txn.update_status(promo);
    }

    /// Abort: the running step is marked Aborted and the Promotion ends `Aborted`.
    fn terminate(&self, txn: &mut dyn Txn, mut promo: Value, req: &Map<String, Value>) {
        let actor = req
            .get("actor")
            .and_then(Value::as_str)
            .unwrap_or("controller:promotion-controller")
            .to_string();
        let now = format_time(txn.now());
        let mut metas: Vec<Value> = arr_at(&promo, "status.stepExecutionMetadata").to_vec();
        let current = promo
            .pointer("/status/currentStep")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        if str_at(&promo, "status.phase") == "Running"
            && metas.len() == current + 1
            && let Some(m) = metas
                .get_mut(current)
                .filter(|m| str_at(m, "status") == "Running")
        {
            m["status"] = json!("Aborted");
            m["finishedAt"] = json!(now);
        }
        let mut patch = json!({"phase": "Aborted", "message": format!("Promotion terminated by {actor}"), "finishedAt": now});
        if !metas.is_empty() {
            patch["stepExecutionMetadata"] = Value::Array(metas);
        }
        promo["status"] = merge_status(&promo, patch);
        self.forget_promotion(util::namespace(&promo), util::name(&promo));
        let _ = txn.update_status(promo);
    }
}

/// Whether a step is behind the Promotion: finished, or ended before it started (skipped,
/// unregistered, its `if` or config unusable). A step being retried has started but not
/// finished.
fn is_done(meta: &Value) -> bool {
    let terminal = matches!(
        str_at(meta, "status"),
        "Succeeded" | "Failed" | "Errored" | "Aborted" | "Skipped"
    );
    terminal && (meta.get("finishedAt").is_some() || meta.get("startedAt").is_none())
}

/// Records a step's output under its alias; `compose-output` inside a task also publishes
/// it under the task's alias, as Kargo's task-output propagation does.
fn propagate_output(state: &mut Value, step: &Value, alias: &str, output: Value) {
    if str_at(step, "uses") == "compose-output"
        && let (Some(ns), Some(out)) = (alias_namespace(alias), output.as_object())
    {
        let ns = ns.to_string();
        if !state[ns.as_str()].is_object() {
            state[ns.as_str()] = json!({});
        }
        for (k, v) in out {
            state[ns.as_str()][k.as_str()] = v.clone();
        }
    }
    state[alias] = output;
}

/// Kargo's `DetermineFinalPhase`: the most severe step outcome (ignoring continueOnError
/// steps) decides, and its message becomes the Promotion's.
pub fn final_phase(steps: &[Value], metas: &[Value]) -> (&'static str, String) {
    let mut worst = "Succeeded";
    let mut message = String::new();
    for (i, m) in metas.iter().enumerate() {
        if steps
            .get(i)
            .and_then(|s| s.get("continueOnError"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            continue;
        }
        let status = str_at(m, "status");
        if severity(status) > severity(worst) {
            worst = match status {
                "Skipped" => "Skipped",
                "Running" => "Running",
                "Aborted" => "Aborted",
                "Failed" => "Failed",
                _ => "Errored",
            };
            message = str_at(m, "message").to_string();
        }
    }
    let phase = match worst {
        "Succeeded" | "Skipped" => "Succeeded",
        "Aborted" => "Aborted",
        "Failed" => "Failed",
        _ => "Errored",
    };
    (phase, message)
}

/// `status` with the patch's members laid over it.
fn merge_status(obj: &Value, patch: Value) -> Value {
    let mut status = obj
        .get("status")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    if let (Some(s), Value::Object(p)) = (status.as_object_mut(), patch) {
        for (k, v) in p {
            s.insert(k, v);
        }
        // `CurrentStep int64 json:"currentStep,omitempty"`: Kargo never writes a zero.
        if s.get("currentStep").and_then(Value::as_u64) == Some(0) {
            s.remove("currentStep");
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_phase_picks_most_severe() {
        let steps = vec![
            json!({"uses": "a"}),
            json!({"uses": "b"}),
            json!({"uses": "c"}),
        ];
        let metas = vec![
            json!({"status": "Succeeded"}),
            json!({"status": "Failed", "message": "step \"step-2\": failed: x"}),
            json!({"status": "Skipped"}),
        ];
        assert_eq!(
            final_phase(&steps, &metas),
            ("Failed", "step \"step-2\": failed: x".to_string())
        );
        let ok = vec![json!({"status": "Succeeded"}), json!({"status": "Skipped"})];
        assert_eq!(final_phase(&steps, &ok).0, "Succeeded");
        let tolerant = vec![json!({"uses": "a", "continueOnError": true})];
        assert_eq!(
            final_phase(&tolerant, &[json!({"status": "Errored"})]).0,
            "Succeeded"
        );
    }

    #[test]
    fn collections_are_keyed_by_origin_with_sha1_ids() {
        let r = json!({"name": "f2", "origin": {"kind": "Warehouse", "name": "b"}});
        let mut items = Map::new();
        items.insert(
            "Warehouse/a".into(),
            json!({"name": "f1", "origin": {"kind": "Warehouse", "name": "a"}}),
        );
        let c = collection_with(items, r);
        use sha1::Digest as _;
        let expected = super::super::names::hex(&sha1::Sha1::digest(b"f1,f2"));
        assert_eq!(c["id"], json!(expected));
        assert_eq!(c["items"]["Warehouse/b"]["name"], "f2");
    }
}
