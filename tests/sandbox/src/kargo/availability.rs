//! Whether a Freight is available to a Stage (Kargo's `Stage.IsFreightAvailable`), with the
//! reason when it is not, and the auto-promotion candidate for each requested origin.

use std::collections::BTreeMap;

use serde_json::Value;

use super::duration;
use super::names::origin_key;
use super::util::{arr_at, at, name, namespace, parse_time, str_at};

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// How long the Freight has soaked in `stage`: the longer of its longest completed soak and
/// its current stay. Zero unless it was verified there, as Kargo counts it.
pub fn longest_soak(freight: &Value, stage: &str, now: jiff::Timestamp) -> i128 {
    let Some(verified) = at(freight, "status.verifiedIn").and_then(|v| v.get(stage)) else {
        return 0;
    };
    let completed = duration::parse(str_at(verified, "longestSoak")).unwrap_or(0);
    let current = at(freight, "status.currentlyIn")
        .and_then(|c| c.get(stage))
        .and_then(|c| parse_time(str_at(c, "since")))
        .map(|since| i128::from(now.as_second() - since.as_second()) * NANOS_PER_SEC)
        .unwrap_or(0);
    completed.max(current)
}

fn has_status_key(freight: &Value, field: &str, stage: &str) -> bool {
    at(freight, &format!("status.{field}"))
        .and_then(|m| m.get(stage))
        .is_some()
}

pub fn is_verified_in(freight: &Value, stage: &str) -> bool {
    has_status_key(freight, "verifiedIn", stage)
}

pub fn is_approved_for(freight: &Value, stage: &str) -> bool {
    has_status_key(freight, "approvedFor", stage)
}

pub fn is_currently_in(freight: &Value, stage: &str) -> bool {
    has_status_key(freight, "currentlyIn", stage)
}

/// `None` when the upstream stage satisfies the request (verified and soaked), else why not.
fn upstream_shortfall(
    freight: &Value,
    upstream: &str,
    required: &str,
    now: jiff::Timestamp,
) -> Option<String> {
    if !is_verified_in(freight, upstream) {
        return Some(format!("not verified in Stage {upstream:?}"));
    }
    let required = duration::parse(required).filter(|_| !required.is_empty())?;
    let soaked = longest_soak(freight, upstream, now);
    if soaked >= required {
        return None;
    }
    let remaining = required - soaked;
    Some(format!(
        "soaking in Stage {upstream:?}: {} of required {} remaining",
        duration::format(remaining),
        duration::format(required)
    ))
}

/// Why `freight` is not available to `stage` right now, or `None` when it is.
pub fn unavailability(stage: &Value, freight: &Value, now: jiff::Timestamp) -> Option<String> {
    let stage_name = name(stage);
    let freight_name = name(freight);
    if namespace(stage) != namespace(freight) {
        return Some(format!(
            "Freight {freight_name:?} is not in the namespace of Stage {stage_name:?}"
        ));
    }
    let origin = freight.get("origin").map(origin_key).unwrap_or_default();
    let mut reasons = Vec::new();
    let mut requested = false;
    for req in arr_at(stage, "spec.requestedFreight") {
        if req.get("origin").map(origin_key) != Some(origin.clone()) {
            continue;
        }
        requested = true;
        if is_approved_for(freight, stage_name) {
            return None;
        }
        let sources = req.get("sources").cloned().unwrap_or(Value::Null);
        if sources.get("direct").and_then(Value::as_bool) == Some(true) {
            return None;
        }
        let upstreams: Vec<&str> = arr_at(&sources, "stages")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let soak = str_at(&sources, "requiredSoakTime");
        let shortfalls: Vec<String> = upstreams
            .iter()
            .filter_map(|u| upstream_shortfall(freight, u, soak, now))
            .collect();
        if str_at(&sources, "availabilityStrategy") == "All" {
            // Every upstream Stage must qualify (vacuously true with none listed).
            if shortfalls.is_empty() {
                return None;
            }
            reasons.push(format!(
                "it is not approved for Stage {stage_name:?} and not verified and soaked in all upstream Stages: {}",
                shortfalls.join("; ")
            ));
        } else if upstreams.len() > shortfalls.len() {
            return None;
        } else if upstreams.is_empty() {
            reasons.push(format!(
                "it is not approved for Stage {stage_name:?}, which accepts Freight from {origin} neither directly nor from upstream Stages"
            ));
        } else {
            reasons.push(format!(
                "it is not approved for Stage {stage_name:?} and not verified and soaked in any upstream Stage: {}",
                shortfalls.join("; ")
            ));
        }
    }
    if !requested {
        return Some(format!(
            "Freight {freight_name:?} comes from {origin}, which Stage {stage_name:?} does not request Freight from"
        ));
    }
    Some(format!(
        "Freight {freight_name:?} is not available to Stage {stage_name:?}: {}",
        reasons.join("; ")
    ))
}

pub fn is_available(stage: &Value, freight: &Value, now: jiff::Timestamp) -> bool {
    unavailability(stage, freight, now).is_none()
}

/// A Stage without promotion steps only passes Freight through ("control flow").
pub fn is_control_flow(stage: &Value) -> bool {
    arr_at(stage, "spec.promotionTemplate.spec.steps").is_empty()
}

fn match_upstream(req: &Value) -> Option<&str> {
    if str_at(req, "sources.autoPromotionOptions.selectionPolicy") != "MatchUpstream" {
        return None;
    }
    arr_at(req, "sources.stages")
        .first()
        .and_then(Value::as_str)
}

/// The Freight available to the Stage for each requested origin, as
/// `ListFreightAvailableToStage` lists it (MatchUpstream also requires the Freight to be
/// current in the single upstream Stage).
pub fn available_by_origin<'a>(
    stage: &Value,
    freight: &'a [Value],
    now: jiff::Timestamp,
) -> BTreeMap<String, Vec<&'a Value>> {
    let mut out: BTreeMap<String, Vec<&'a Value>> = BTreeMap::new();
    for req in arr_at(stage, "spec.requestedFreight") {
        let origin = req.get("origin").map(origin_key).unwrap_or_default();
        let direct = at(req, "sources.direct").and_then(Value::as_bool) == Some(true);
        let upstream = if direct { None } else { match_upstream(req) };
        let list = out.entry(origin.clone()).or_default();
        for f in freight {
            if f.get("origin").map(origin_key) != Some(origin.clone())
                || !is_available(stage, f, now)
            {
                continue;
            }
            if upstream.is_some_and(|u| !is_currently_in(f, u)) {
                continue;
            }
            list.push(f);
        }
    }
    out
}

/// Kargo's `SelectAutoPromotionCandidates`: per origin, the newest available Freight
/// (`discoveredAt`, falling back to creation time); MatchUpstream with more than one match
/// is a transient state and yields nothing. `order` breaks ties between Freight discovered in
/// the same second (higher is newer).
pub fn select_candidates<'a>(
    stage: &Value,
    freight: &'a [Value],
    now: jiff::Timestamp,
    order: impl Fn(&Value) -> u64,
) -> BTreeMap<String, &'a Value> {
    let by_origin = available_by_origin(stage, freight, now);
    let mut out = BTreeMap::new();
    for req in arr_at(stage, "spec.requestedFreight") {
        let origin = req.get("origin").map(origin_key).unwrap_or_default();
        let Some(list) = by_origin.get(&origin) else {
            continue;
        };
        if list.is_empty() {
            continue;
        }
        if match_upstream(req).is_some() && list.len() > 1 {
            continue;
        }
        let newest = list.iter().copied().max_by(|a, b| {
            discovered_at(a)
                .cmp(&discovered_at(b))
                .then_with(|| order(a).cmp(&order(b)))
                .then_with(|| name(a).cmp(name(b)))
        });
        if let Some(f) = newest {
            out.insert(origin, f);
        }
    }
    out
}

fn discovered_at(f: &Value) -> Option<jiff::Timestamp> {
    let s = str_at(f, "discoveredAt");
    let s = if s.is_empty() {
        str_at(f, "metadata.creationTimestamp")
    } else {
        s
    };
    parse_time(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> jiff::Timestamp {
        "2024-01-01T12:00:00Z".parse().unwrap()
    }

    fn stage(sources: Value) -> Value {
        json!({"metadata": {"name": "qa", "namespace": "p"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": sources}],
                     "promotionTemplate": {"spec": {"steps": [{"uses": "fail"}]}}}})
    }

    fn freight(status: Value) -> Value {
        json!({"metadata": {"name": "f1", "namespace": "p"}, "origin": {"kind": "Warehouse", "name": "w"}, "status": status})
    }

    #[test]
    fn direct_and_approved_are_available() {
        assert!(is_available(
            &stage(json!({"direct": true})),
            &freight(json!({})),
            now()
        ));
        let approved =
            freight(json!({"approvedFor": {"qa": {"approvedAt": "2024-01-01T00:00:00Z"}}}));
        assert!(is_available(
            &stage(json!({"stages": ["dev"]})),
            &approved,
            now()
        ));
    }

    #[test]
    fn wrong_origin_and_namespace() {
        let mut f = freight(json!({}));
        f["origin"]["name"] = json!("other");
        let why = unavailability(&stage(json!({"direct": true})), &f, now()).unwrap();
        assert!(why.contains("Warehouse/other"), "{why}");
        let mut f = freight(json!({}));
        f["metadata"]["namespace"] = json!("elsewhere");
        assert!(!is_available(&stage(json!({"direct": true})), &f, now()));
    }

    #[test]
    fn not_verified_upstream() {
        let why = unavailability(
            &stage(json!({"stages": ["dev"]})),
            &freight(json!({})),
            now(),
        )
        .unwrap();
        assert!(why.contains("not verified in Stage \"dev\""), "{why}");
        assert!(why.contains("not approved for Stage \"qa\""), "{why}");
    }

    #[test]
    fn soak_time_counts_current_stay_and_longest_soak() {
        let s = stage(json!({"stages": ["dev"], "requiredSoakTime": "1h"}));
        let current = freight(
            json!({"verifiedIn": {"dev": {"verifiedAt": "2024-01-01T11:00:00Z"}},
            "currentlyIn": {"dev": {"since": "2024-01-01T11:30:00Z"}}}),
        );
        let why = unavailability(&s, &current, now()).unwrap();
        assert!(why.contains("30m0s of required 1h0m0s remaining"), "{why}");
        let later: jiff::Timestamp = "2024-01-01T12:30:00Z".parse().unwrap();
        assert!(is_available(&s, &current, later));
        let past = freight(
            json!({"verifiedIn": {"dev": {"verifiedAt": "2024-01-01T08:00:00Z", "longestSoak": "2h0m0s"}}}),
        );
        assert!(is_available(&s, &past, now()));
    }

    #[test]
    fn one_of_versus_all() {
        let f = freight(json!({"verifiedIn": {"a": {}}}));
        assert!(is_available(
            &stage(json!({"stages": ["a", "b"]})),
            &f,
            now()
        ));
        let all = stage(json!({"stages": ["a", "b"], "availabilityStrategy": "All"}));
        let why = unavailability(&all, &f, now()).unwrap();
        assert!(why.contains("not verified in Stage \"b\""), "{why}");
        let both = freight(json!({"verifiedIn": {"a": {}, "b": {}}}));
        assert!(is_available(&all, &both, now()));
    }

    #[test]
    fn no_sources_explains_itself() {
        let why = unavailability(&stage(json!({})), &freight(json!({})), now()).unwrap();
        assert!(
            why.contains("neither directly nor from upstream Stages"),
            "{why}"
        );
    }

    #[test]
    fn candidates_pick_newest_and_respect_match_upstream() {
        let s = stage(json!({"direct": true}));
        let mut old = freight(json!({}));
        old["discoveredAt"] = json!("2024-01-01T10:00:00Z");
        let mut new = freight(json!({}));
        new["metadata"]["name"] = json!("f2");
        new["discoveredAt"] = json!("2024-01-01T11:00:00Z");
        let all = vec![old.clone(), new.clone()];
        let c = select_candidates(&s, &all, now(), |_| 0);
        assert_eq!(name(c["Warehouse/w"]), "f2");

        let mu = stage(
            json!({"stages": ["dev"], "autoPromotionOptions": {"selectionPolicy": "MatchUpstream"}}),
        );
        let mut in_dev = old.clone();
        in_dev["status"] = json!({"verifiedIn": {"dev": {}}, "currentlyIn": {"dev": {"since": "2024-01-01T10:00:00Z"}}});
        let mut verified_only = new.clone();
        verified_only["status"] = json!({"verifiedIn": {"dev": {}}});
        let all = vec![in_dev, verified_only];
        let c = select_candidates(&mu, &all, now(), |_| 0);
        assert_eq!(name(c["Warehouse/w"]), "f1");
    }

    #[test]
    fn same_second_ties_use_order() {
        let s = stage(json!({"direct": true}));
        let mut a = freight(json!({}));
        a["discoveredAt"] = json!("2024-01-01T10:00:00Z");
        let mut b = a.clone();
        b["metadata"]["name"] = json!("f0");
        let all = vec![a, b];
        let c = select_candidates(&s, &all, now(), |f| if name(f) == "f0" { 2 } else { 1 });
        assert_eq!(name(c["Warehouse/w"]), "f0");
    }
}
