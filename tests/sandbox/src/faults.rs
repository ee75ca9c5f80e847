//! HTTP-level faults: answer 503, delay requests, refuse connections, or lose the answer to a
//! request that was carried out (504, connection reset, an answer too late), for a while or
//! for a number of requests, optionally only for matching verbs and resources.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// Answer `503 ServiceUnavailable`.
    Unavailable,
    /// Hold each matching request for `delay_ms` before handling it.
    Delay,
    /// Close the listener and drop open connections (clients see connection refused).
    Refuse,
    /// Carry the request out (store the object), then answer `504 Timeout` as an API server
    /// whose storage was slow does: the client cannot tell whether the write happened.
    TimeoutAfterWrite,
    /// Carry the request out, then reset the connection instead of answering.
    ResetAfterWrite,
    /// Carry the request out at once and hold its answer back for `delay_ms` (past a client's
    /// deadline, the client gives up on a write that happened).
    DelayResponse,
}

/// One HTTP fault. Build with [`HttpFault::unavailable`], [`HttpFault::delay`],
/// [`HttpFault::refuse`], [`HttpFault::timeout_after_write`],
/// [`HttpFault::reset_after_write`] or [`HttpFault::delay_response`], then narrow it:
///
/// ```
/// use std::time::Duration;
/// use kargo_sandbox::HttpFault;
/// let fault = HttpFault::unavailable().verb("get").resource("stages").times(2);
/// assert_eq!(fault.count, Some(2));
/// let slow = HttpFault::delay(Duration::from_millis(300)).for_duration(Duration::from_secs(5));
/// assert_eq!(slow.duration_ms, Some(5000));
/// let lost = HttpFault::reset_after_write().verb("create").resource("promotions").times(1);
/// assert_eq!(lost.verb.as_deref(), Some("create"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpFault {
    pub kind: FaultKind,
    #[serde(default)]
    pub delay_ms: u64,
    /// How long the fault lasts; `None` until cleared (required for `Refuse`).
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// How many matching requests it affects; `None` for all.
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub verb: Option<String>,
    /// A plural (`stages`), optionally with a subresource (`stages/status`).
    #[serde(default)]
    pub resource: Option<String>,
}

impl HttpFault {
    fn new(kind: FaultKind) -> HttpFault {
        HttpFault {
            kind,
            delay_ms: 0,
            duration_ms: None,
            count: None,
            verb: None,
            resource: None,
        }
    }

    pub fn unavailable() -> HttpFault {
        HttpFault::new(FaultKind::Unavailable)
    }

    pub fn delay(by: Duration) -> HttpFault {
        HttpFault {
            delay_ms: by.as_millis() as u64,
            ..HttpFault::new(FaultKind::Delay)
        }
    }

    pub fn refuse(duration: Duration) -> HttpFault {
        HttpFault::new(FaultKind::Refuse).for_duration(duration)
    }

    /// Stores the object, then answers `504 Timeout`.
    pub fn timeout_after_write() -> HttpFault {
        HttpFault::new(FaultKind::TimeoutAfterWrite)
    }

    /// Stores the object, then resets the connection.
    pub fn reset_after_write() -> HttpFault {
        HttpFault::new(FaultKind::ResetAfterWrite)
    }

    /// Carries the request out at once and answers only after `by`.
    pub fn delay_response(by: Duration) -> HttpFault {
        HttpFault {
            delay_ms: by.as_millis() as u64,
            ..HttpFault::new(FaultKind::DelayResponse)
        }
    }

    pub fn for_duration(mut self, d: Duration) -> HttpFault {
        self.duration_ms = Some(d.as_millis() as u64);
        self
    }

    pub fn times(mut self, n: u32) -> HttpFault {
        self.count = Some(n);
        self
    }

    pub fn verb(mut self, verb: &str) -> HttpFault {
        self.verb = Some(verb.to_string());
        self
    }

    pub fn resource(mut self, resource: &str) -> HttpFault {
        self.resource = Some(resource.to_string());
        self
    }

    fn matches(&self, verb: &str, resource: &str) -> bool {
        self.verb.as_deref().is_none_or(|v| v == verb)
            && self.resource.as_deref().is_none_or(|r| r == resource)
    }
}

#[derive(Debug)]
struct Active {
    fault: HttpFault,
    until: Option<Instant>,
    remaining: Option<u32>,
}

/// What happens to the answer of a request that was carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    Timeout,
    Reset,
    Delay(Duration),
}

/// What a request meets.
#[derive(Debug, Default, PartialEq)]
pub struct Effect {
    pub delay: Option<Duration>,
    pub unavailable: bool,
    pub after: Option<After>,
}

#[derive(Debug, Default)]
pub struct Faults {
    active: Vec<Active>,
    refuse_until: Option<Instant>,
}

impl Faults {
    pub fn add(&mut self, fault: HttpFault) -> Result<(), String> {
        let until = fault
            .duration_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        if fault.kind == FaultKind::Refuse {
            let until = until.ok_or("a refuse fault needs a duration")?;
            self.refuse_until = Some(self.refuse_until.map_or(until, |u| u.max(until)));
            return Ok(());
        }
        self.active.push(Active {
            remaining: fault.count,
            until,
            fault,
        });
        Ok(())
    }

    pub fn clear(&mut self) {
        self.active.clear();
        self.refuse_until = None;
    }

    /// Until when connections are refused, if they are.
    pub fn refusing(&mut self) -> Option<Instant> {
        if self.refuse_until.is_some_and(|u| u <= Instant::now()) {
            self.refuse_until = None;
        }
        self.refuse_until
    }

    /// Applies the faults to one request (counting it against limited faults).
    pub fn on_request(&mut self, verb: &str, resource: &str) -> Effect {
        let now = Instant::now();
        self.active
            .retain(|a| a.until.is_none_or(|u| u > now) && a.remaining != Some(0));
        let mut effect = Effect::default();
        for a in self
            .active
            .iter_mut()
            .filter(|a| a.fault.matches(verb, resource))
        {
            match a.fault.kind {
                FaultKind::Unavailable => effect.unavailable = true,
                FaultKind::Delay => {
                    let d = Duration::from_millis(a.fault.delay_ms);
                    effect.delay = Some(effect.delay.map_or(d, |e| e.max(d)));
                }
                FaultKind::Refuse => {}
                FaultKind::TimeoutAfterWrite => effect.after = Some(After::Timeout),
                FaultKind::ResetAfterWrite => effect.after = Some(After::Reset),
                FaultKind::DelayResponse => {
                    let d = Duration::from_millis(a.fault.delay_ms);
                    if !matches!(effect.after, Some(After::Timeout | After::Reset)) {
                        effect.after = Some(After::Delay(d));
                    }
                }
            }
            if let Some(n) = a.remaining.as_mut() {
                *n = n.saturating_sub(1);
            }
        }
        effect
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_and_matching_faults() {
        let mut f = Faults::default();
        f.add(
            HttpFault::unavailable()
                .verb("get")
                .resource("stages")
                .times(2),
        )
        .unwrap();
        f.add(HttpFault::delay(Duration::from_millis(50))).unwrap();
        assert_eq!(
            f.on_request("list", "stages"),
            Effect {
                delay: Some(Duration::from_millis(50)),
                unavailable: false,
                after: None,
            }
        );
        assert!(f.on_request("get", "stages").unavailable);
        assert!(f.on_request("get", "stages").unavailable);
        assert!(!f.on_request("get", "stages").unavailable);
        f.clear();
        assert_eq!(f.on_request("get", "stages"), Effect::default());
        assert!(f.add(HttpFault::new(FaultKind::Refuse)).is_err());
        f.add(HttpFault::refuse(Duration::from_secs(5))).unwrap();
        assert!(f.refusing().is_some());
    }

    #[test]
    fn answers_lost_after_the_write() {
        let mut f = Faults::default();
        f.add(HttpFault::delay_response(Duration::from_millis(20)).verb("create"))
            .unwrap();
        assert_eq!(
            f.on_request("create", "promotions").after,
            Some(After::Delay(Duration::from_millis(20)))
        );
        f.add(HttpFault::reset_after_write().verb("create").times(1))
            .unwrap();
        assert_eq!(
            f.on_request("create", "promotions").after,
            Some(After::Reset)
        );
        assert_eq!(
            f.on_request("create", "promotions").after,
            Some(After::Delay(Duration::from_millis(20))),
            "the reset was for one request"
        );
        f.clear();
        f.add(HttpFault::timeout_after_write().resource("promotions"))
            .unwrap();
        assert_eq!(
            f.on_request("create", "promotions").after,
            Some(After::Timeout)
        );
        assert_eq!(f.on_request("create", "stages").after, None);
        let json = serde_json::to_value(HttpFault::reset_after_write()).unwrap();
        assert_eq!(json["kind"], "resetAfterWrite");
    }
}
