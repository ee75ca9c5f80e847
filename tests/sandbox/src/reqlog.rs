//! The request log: every Kubernetes API request with its verb, resource, user agent and
//! status, plus exact counters by verb and resource that benchmarks assert on.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// How many requests the log keeps in full (the counters are never truncated).
const KEEP: usize = 100_000;

/// One request. `resource` is a plural (`stages`, `stages/status`) or, for non-resource
/// requests, the path (`/apis`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub verb: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub method: String,
    pub path: String,
    pub user: Option<String>,
    pub user_agent: String,
    pub code: u16,
}

/// Request counts by verb, then resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts(pub BTreeMap<String, BTreeMap<String, u64>>);

impl RequestCounts {
    /// Requests with this verb on this resource (`get`, `stages`).
    pub fn get(&self, verb: &str, resource: &str) -> u64 {
        self.0
            .get(verb)
            .and_then(|r| r.get(resource))
            .copied()
            .unwrap_or(0)
    }

    /// Requests with this verb on any resource.
    pub fn verb(&self, verb: &str) -> u64 {
        self.0.get(verb).map(|r| r.values().sum()).unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.values().flat_map(|r| r.values()).sum()
    }
}

#[derive(Debug, Default)]
pub struct RequestLog {
    records: VecDeque<RequestRecord>,
    counts: RequestCounts,
}

impl RequestLog {
    pub fn record(&mut self, r: RequestRecord) {
        *self
            .counts
            .0
            .entry(r.verb.clone())
            .or_default()
            .entry(r.resource.clone())
            .or_default() += 1;
        if self.records.len() == KEEP {
            self.records.pop_front();
        }
        self.records.push_back(r);
    }

    pub fn records(&self) -> Vec<RequestRecord> {
        self.records.iter().cloned().collect()
    }

    pub fn counts(&self) -> RequestCounts {
        self.counts.clone()
    }

    pub fn reset(&mut self) {
        self.records.clear();
        self.counts = RequestCounts::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(verb: &str, resource: &str) -> RequestRecord {
        RequestRecord {
            verb: verb.into(),
            resource: resource.into(),
            namespace: None,
            name: None,
            method: "GET".into(),
            path: "/".into(),
            user: None,
            user_agent: "test".into(),
            code: 200,
        }
    }

    #[test]
    fn counts_by_verb_and_resource_and_reset() {
        let mut log = RequestLog::default();
        log.record(rec("get", "stages"));
        log.record(rec("get", "stages"));
        log.record(rec("list", "stages"));
        log.record(rec("get", "warehouses"));
        let c = log.counts();
        assert_eq!(c.get("get", "stages"), 2);
        assert_eq!(c.verb("get"), 3);
        assert_eq!(c.total(), 4);
        assert_eq!(log.records().len(), 4);
        log.reset();
        assert_eq!(log.counts().total(), 0);
    }
}
