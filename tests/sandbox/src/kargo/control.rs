//! Control commands from the outside world: `publish` (a registry announces artifacts),
//! `promote` (as Kargo's UI or CLI would), Kargo-level faults and holds, and the
//! `available` query that explains Freight availability.

use serde_json::{Value, json};

use super::availability::{is_control_flow, unavailability};
use super::util::{self, GROUP, str_at};
use super::{Kargo, PromotionFault, StepSelector};
use crate::hooks::{ApiError, Txn};

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "BadRequest", message)
}

fn required<'a>(body: &'a Value, key: &str, command: &str) -> Result<&'a str, ApiError> {
    let v = str_at(body, key);
    if v.is_empty() {
        Err(bad_request(format!("{command} needs {key:?}")))
    } else {
        Ok(v)
    }
}

/// `step` is a 1-based index (number or numeric string) or an alias.
fn step_selector(v: Option<&Value>) -> Result<StepSelector, ApiError> {
    let index = |n: u64| {
        usize::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .map(|n| StepSelector::Index(n - 1))
            .ok_or_else(|| bad_request("fail-promotion: step indexes start at 1"))
    };
    match v {
        Some(Value::Number(n)) => n
            .as_u64()
            .map_or_else(|| Err(bad_request("fail-promotion: bad step index")), index),
        Some(Value::String(s)) if !s.is_empty() => match s.parse::<u64>() {
            Ok(n) => index(n),
            Err(_) => Ok(StepSelector::Alias(s.clone())),
        },
        _ => Err(bad_request(
            "fail-promotion needs \"step\" (1-based index or alias)",
        )),
    }
}

impl Kargo {
    pub(super) fn run_command(
        &self,
        txn: &mut dyn Txn,
        name: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        match name {
            "publish" => self.publish(txn, body),
            "fail-promotion" => {
                let project = required(body, "project", name)?;
                let stage = required(body, "stage", name)?;
                let step = step_selector(body.get("step"))?;
                let message = match str_at(body, "message") {
                    "" => "injected failure".to_string(),
                    m => m.to_string(),
                };
                self.state().armed_promotion_faults.insert(
                    (project.to_string(), stage.to_string()),
                    PromotionFault { step, message },
                );
                Ok(json!({"armed": true}))
            }
            "hold-promotion" => {
                let project = required(body, "project", name)?;
                let stage = required(body, "stage", name)?;
                let step = step_selector(body.get("step"))?;
                self.state()
                    .held_steps
                    .insert((project.to_string(), stage.to_string()), step);
                Ok(json!({"held": true}))
            }
            "promote" => self.promote(txn, body),
            "fail-verification" => {
                let project = required(body, "project", name)?;
                let stage = required(body, "stage", name)?;
                self.state()
                    .failing_verifications
                    .insert((project.to_string(), stage.to_string()));
                Ok(json!({"armed": true}))
            }
            "clear-faults" => {
                let mut st = self.state();
                let cleared = st.armed_promotion_faults.len()
                    + st.bound_promotion_faults.len()
                    + st.failing_verifications.len()
                    + st.held_steps.len();
                st.armed_promotion_faults.clear();
                st.bound_promotion_faults.clear();
                st.failing_verifications.clear();
                st.held_steps.clear();
                Ok(json!({"cleared": cleared}))
            }
            "available" => {
                let project = required(body, "project", name)?;
                let stage_name = required(body, "stage", name)?;
                let freight_name = required(body, "freight", name)?;
                let stage = txn
                    .get(GROUP, "stages", Some(project), stage_name)
                    .ok_or_else(|| util::not_found("stages", GROUP, stage_name))?;
                let freight = txn
                    .get(GROUP, "freights", Some(project), freight_name)
                    .or_else(|| {
                        txn.list(GROUP, "freights", Some(project))
                            .into_iter()
                            .find(|f| str_at(f, "alias") == freight_name)
                    })
                    .ok_or_else(|| util::not_found("freights", GROUP, freight_name))?;
                if is_control_flow(&stage) {
                    return Ok(json!({"available": false, "reason": format!(
                        "Stage {stage_name:?} is a control-flow Stage (it has no promotion steps) and cannot be promoted to"
                    )}));
                }
                Ok(match unavailability(&stage, &freight, txn.now()) {
                    None => json!({"available": true, "reason": null}),
                    Some(reason) => json!({"available": false, "reason": reason}),
                })
            }
            other => Err(ApiError::new(
                404,
                "NotFound",
                format!("unknown control command {other:?}"),
            )),
        }
    }
}

impl Kargo {
    /// `promote`: what Kargo's API server does for the UI's or CLI's "promote" (freight by
    /// name or alias): checks availability and creates the Promotion on its own behalf.
    fn promote(&self, txn: &mut dyn Txn, body: &Value) -> Result<Value, ApiError> {
        let project = required(body, "project", "promote")?;
        let stage_name = required(body, "stage", "promote")?;
        let wanted = required(body, "freight", "promote")?;
        let stage = txn
            .get(GROUP, "stages", Some(project), stage_name)
            .ok_or_else(|| util::not_found("stages", GROUP, stage_name))?;
        let freight = txn
            .get(GROUP, "freights", Some(project), wanted)
            .or_else(|| {
                txn.list(GROUP, "freights", Some(project))
                    .into_iter()
                    .find(|f| str_at(f, "alias") == wanted)
            })
            .ok_or_else(|| util::not_found("freights", GROUP, wanted))?;
        if let Some(reason) = unavailability(&stage, &freight, txn.now()) {
            return Err(ApiError::new(422, "Invalid", reason));
        }
        let mut promo = json!({
            "apiVersion": util::API_VERSION,
            "kind": "Promotion",
            "metadata": {"namespace": project, "generateName": "promo-"},
            "spec": {"stage": stage_name, "freight": util::name(&freight)},
        });
        // The API server records the requesting user (here the UI's admin) as the actor.
        util::set_annotation(&mut promo, util::ANNOTATION_CREATE_ACTOR, "admin");
        let new_ulid = || self.new_ulid();
        let order = |f: &Value| self.freight_order(f);
        let env = self.promotion_env(&new_ulid, &order);
        super::promotion::default_create(txn, &env, &mut promo, project, "", true)?;
        let created = txn.create(promo)?;
        Ok(json!({"name": util::name(&created)}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_selectors() {
        assert_eq!(
            step_selector(Some(&json!(2))).unwrap(),
            StepSelector::Index(1)
        );
        assert_eq!(
            step_selector(Some(&json!("3"))).unwrap(),
            StepSelector::Index(2)
        );
        assert_eq!(
            step_selector(Some(&json!("push"))).unwrap(),
            StepSelector::Alias("push".into())
        );
        assert!(step_selector(Some(&json!(0))).is_err());
        assert!(step_selector(None).is_err());
    }
}
