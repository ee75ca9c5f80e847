//! Freight resolution: which freight a configuration means, and what the stage makes of it,
//! from what the cluster says (the stage, the project's freight, the cluster's clock and, for
//! a selector, the warehouse's subscriptions), read once per process and shared by every
//! resource that needs the same objects (`KargoClient::get_shared`).

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use jiff::Timestamp;

use crate::kargo::freight::{auto_promotion_candidate, resolve_selector};
use crate::kargo::{
    ApprovedStage, Error as KargoError, Freight, KargoClient, Object as _, Origin, Stage, Warehouse,
};
use crate::plugin::{AttributePath, Diagnostic};
use crate::resources::common::explain;

pub mod choice;
pub mod stage;
pub mod values;

pub use choice::{FREIGHT, FREIGHT_ALIAS, FREIGHT_SELECTOR, FreightChoice, ORIGIN_WAREHOUSE, Way};

/// Why the cluster could not say which freight a choice means.
#[derive(Debug)]
pub enum Unresolvable {
    /// The stage does not exist.
    StageMissing,
    /// The stage could not be read.
    StageUnread(KargoError),
    /// The project's freight could not be listed.
    FreightUnlisted(KargoError),
    /// The cluster's clock could not be read.
    ClockUnread(KargoError),
    /// The choice designates no freight (the diagnostic says what was found).
    NoFreight(Diagnostic),
}

impl Unresolvable {
    /// The failure as an apply reports it, when what the plan could not resolve still cannot
    /// be: `purpose` completes "to resolve the freight to ..." (`promote`, `approve`), and
    /// `path` is the attribute the freight was chosen with.
    pub fn diagnostic(
        self,
        project: &str,
        stage: &str,
        purpose: &str,
        path: AttributePath,
    ) -> Diagnostic {
        let read_failed = |what: &str, e: &KargoError| {
            Diagnostic::error(
                format!("Failed to read {what}"),
                format!(
                    "Could not read {what} to resolve the freight to {purpose}: {}",
                    explain(e)
                ),
            )
        };
        match self {
            Unresolvable::StageMissing => Diagnostic::error(
                "Stage not found",
                format!("Project {project:?} has no stage {stage:?} to {purpose} into."),
            )
            .at(AttributePath::attr("stage")),
            Unresolvable::StageUnread(e) => read_failed(&format!("stage {stage:?}"), &e),
            Unresolvable::FreightUnlisted(e) => {
                read_failed(&format!("the freight of project {project:?}"), &e)
            }
            Unresolvable::ClockUnread(e) => read_failed("the cluster's clock", &e),
            Unresolvable::NoFreight(d) => d.at(path),
        }
    }
}

/// A freight chosen for a stage, with what the cluster said about both.
#[derive(Clone, Debug)]
pub struct Resolution {
    pub stage: Stage,
    /// The freight chosen.
    pub target: Freight,
    /// What the stage holds from the target's warehouse now, with its alias.
    pub current: Option<Freight>,
    /// The cluster's clock, which availability (soak times) is judged by.
    pub now: Timestamp,
    /// Whether Kargo auto-promotes into the stage, and if so its auto-promotion candidate
    /// from the target's warehouse (`None` inside when it has none right now).
    pub auto_promotion: Option<Option<Freight>>,
}

impl Resolution {
    /// What Kargo will make of a user's promotion of the target: nothing when the stage is
    /// not auto-promoted, a hold when the target is not the auto-promotion candidate, a resume
    /// (releasing any hold) when it is.
    pub fn intent(&self) -> HoldIntent {
        match &self.auto_promotion {
            None => HoldIntent::None,
            Some(Some(c)) if c.name() == self.target.name() => HoldIntent::Resume,
            Some(candidate) => HoldIntent::Hold(candidate.clone().map(Box::new)),
        }
    }
}

/// The auto-promotion intent Kargo's promotion webhook stamps on a user's promotion.
#[derive(Clone, Debug)]
pub enum HoldIntent {
    None,
    /// `kargo.akuity.io/auto-promotion-hold`, with the candidate passed over (if any).
    Hold(Option<Box<Freight>>),
    /// `kargo.akuity.io/auto-promotion-resume`.
    Resume,
}

/// Resolves `choice` for `stage_name`: reads the stage, the project's freight (counting the
/// approvals planned so far, see [`expect_approval`]), the cluster's clock and, for a
/// selector, its warehouse; then picks the freight. Availability is the caller's to judge
/// (it explains a refusal on its own terms), except for the selector's `available_only`.
pub async fn for_stage(
    client: &KargoClient,
    project: &str,
    stage_name: &str,
    choice: &FreightChoice,
) -> Result<Resolution, Unresolvable> {
    let stage = client
        .get_shared::<Stage>(Some(project), stage_name)
        .await
        .map_err(Unresolvable::StageUnread)?
        .ok_or(Unresolvable::StageMissing)?;
    let freights = project_freight(client, project)
        .await
        .map_err(Unresolvable::FreightUnlisted)?;
    let now = client
        .server_time()
        .await
        .map_err(Unresolvable::ClockUnread)?;
    let choice = with_strictness(client, project, choice).await;
    let target = choose(&choice, &freights, Some(&stage), project, now)
        .map_err(Unresolvable::NoFreight)?
        .clone();
    let current = held_from(&stage, &target.origin, &freights);
    let auto_promotion = (stage.status.auto_promotion_enabled == Some(true)).then(|| {
        auto_promotion_candidate(&stage, &target.origin.name, &freights, now)
            .ok()
            .cloned()
    });
    Ok(Resolution {
        stage,
        target,
        current,
        now,
        auto_promotion,
    })
}

/// What `stage` holds from `origin`, with its alias from `freights` (references in the
/// stage's status carry none; the Freight does).
pub fn held_from(stage: &Stage, origin: &Origin, freights: &[Freight]) -> Option<Freight> {
    stage.current_for(origin).map(|mut held| {
        held.alias = freights
            .iter()
            .find(|f| f.name() == held.name())
            .and_then(|f| f.alias().map(str::to_string));
        held
    })
}

/// The freight `choice` designates among all of the project's, whatever any stage makes
/// of it (what an approval needs): a selector considers freight available or not.
pub async fn without_stage(
    client: &KargoClient,
    project: &str,
    choice: &FreightChoice,
) -> Result<Freight, Unresolvable> {
    let freights = match stored_freight(client, project).await {
        Ok(f) => f,
        // No project namespace (yet): no freight either.
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(Unresolvable::FreightUnlisted(e)),
    };
    let choice = with_strictness(client, project, choice).await;
    // Without a stage availability plays no part, so neither does the clock.
    choose(&choice, &freights, None, project, Timestamp::now())
        .cloned()
        .map_err(Unresolvable::NoFreight)
}

/// `choice` with a selector's version strictness set from its warehouse's subscriptions
/// (one read, only for images and Git repositories). A warehouse that cannot be read
/// counts as strict, Kargo's default, so a plan still resolves while it is being created.
pub async fn with_strictness(
    client: &KargoClient,
    project: &str,
    choice: &FreightChoice,
) -> FreightChoice {
    let mut choice = choice.clone();
    if let FreightChoice::Selector(selector) = &mut choice {
        let warehouse = match selector.strictness_source() {
            Some(name) => match client.get_shared::<Warehouse>(Some(project), name).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::debug!(
                        warehouse = name,
                        error = %e,
                        "could not read the warehouse; reading versions strictly"
                    );
                    None
                }
            },
            None => None,
        };
        selector.learn_strictness(warehouse.as_ref());
    }
    choice
}

/// All freight of a project, counting as given the approvals planned earlier in the same
/// plan (see [`expect_approval`]), so that a promotion planned after the approval it depends
/// on is not refused for lack of it.
pub async fn project_freight(
    client: &KargoClient,
    project: &str,
) -> Result<Vec<Freight>, KargoError> {
    let mut freights = stored_freight(client, project).await?;
    add_planned_approvals(client.host(), project, &mut freights);
    Ok(freights)
}

/// All freight of a project, exactly as the cluster stores it: listed once per process and
/// shared (until a write or a wait in the project), whatever number of resources ask.
pub async fn stored_freight(
    client: &KargoClient,
    project: &str,
) -> Result<Vec<Freight>, KargoError> {
    Ok(client
        .list_shared::<Freight>(Some(project), None)
        .await?
        .items)
}

/// Marks `freights` approved for the stages [`expect_approval`] recorded for them.
pub(crate) fn add_planned_approvals(host: &str, project: &str, freights: &mut [Freight]) {
    let planned = planned_approvals()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for f in freights {
        for (h, p, name, stage) in &planned {
            if h == host && p == project && name == f.name() {
                f.status
                    .approved_for
                    .entry(stage.clone())
                    .or_insert_with(ApprovedStage::default);
            }
        }
    }
}

/// (API server, project, freight, stage) of the approvals planned so far by this process.
type PlannedApprovals = BTreeSet<(String, String, String, String)>;

fn planned_approvals() -> &'static Mutex<PlannedApprovals> {
    static PLANNED: OnceLock<Mutex<PlannedApprovals>> = OnceLock::new();
    PLANNED.get_or_init(Default::default)
}

/// Records that the plan approves `freight` for `stage`. Terraform plans a resource only after
/// those it depends on, within one provider process per plan, so what `depends_on` an approval
/// sees the freight as approved. At apply the approval is written before they run, and
/// Kargo's promotion webhook checks availability again when the promotion is created.
pub fn expect_approval(client: &KargoClient, project: &str, freight: &str, stage: &str) {
    planned_approvals()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert((
            client.host().to_string(),
            project.to_string(),
            freight.to_string(),
            stage.to_string(),
        ));
}

/// The freight `choice` designates among `freights` (a project's). `stage` is needed for
/// `origin_warehouse` and for a selector's `available_only`; without one, selectors ignore
/// availability. Errors are placed on the choosing attribute and say what was found.
pub fn choose<'a>(
    choice: &FreightChoice,
    freights: &'a [Freight],
    stage: Option<&Stage>,
    project: &str,
    now: Timestamp,
) -> Result<&'a Freight, Diagnostic> {
    let not_found =
        |detail: String| Diagnostic::error("Freight not found", detail).at(choice.path());
    match choice {
        FreightChoice::Name(name) => freights.iter().find(|f| f.name() == name).ok_or_else(|| {
            let hint = freights
                .iter()
                .find(|f| f.alias() == Some(name))
                .map(|f| {
                    format!(
                        " {name:?} is the alias of freight {:?}: use `freight_alias`.",
                        f.name()
                    )
                })
                .unwrap_or_default();
            not_found(format!(
                "Project {project:?} has no freight named {name:?}.{hint}"
            ))
        }),
        FreightChoice::Alias(alias) => freights
            .iter()
            .find(|f| f.alias() == Some(alias))
            .ok_or_else(|| {
                let hint = if freights.iter().any(|f| f.name() == alias) {
                    format!(" {alias:?} is a freight name: use `freight`.")
                } else {
                    String::new()
                };
                not_found(format!(
                    "Project {project:?} has no freight with alias {alias:?}.{hint}"
                ))
            }),
        FreightChoice::Selector(selector) => {
            let unstaged;
            let (stage, selector) = match stage {
                Some(s) => (s, selector.clone()),
                None => {
                    unstaged = Stage::default();
                    let mut s = selector.clone();
                    s.available_only = false;
                    (&unstaged, s)
                }
            };
            resolve_selector(&selector, freights, stage, now).map_err(|why| {
                Diagnostic::error("No freight matches the selector", why).at(choice.path())
            })
        }
        FreightChoice::Origin(warehouse) => {
            let Some(stage) = stage else {
                return Err(Diagnostic::error(
                    "No stage to choose freight for",
                    "`origin_warehouse` picks freight for a stage, and there is none here.",
                )
                .at(choice.path()));
            };
            auto_promotion_candidate(stage, warehouse, freights, now).map_err(|why| {
                Diagnostic::error("Kargo has no freight to promote", why).at(choice.path())
            })
        }
    }
}

/// Freight for the tests of resolution and of the values shown for it.
#[cfg(test)]
pub(crate) mod test_support {
    use serde_json::json;

    use crate::kargo::Freight;
    use crate::kargo::types::test_support::freight;

    /// `f1` (`tall-fox`, app 1.0.0) and `f2` (`wise-owl`, app 1.1.0) from warehouse `app`.
    pub fn freights() -> Vec<Freight> {
        [("f1", "tall-fox", "1.0.0"), ("f2", "wise-owl", "1.1.0")]
            .iter()
            .map(|(name, alias, tag)| {
                freight(json!({
                    "metadata": {"name": name, "namespace": "shop"}, "alias": alias,
                    "origin": {"kind": "Warehouse", "name": "app"},
                    "images": [{"repoURL": "ghcr.io/acme/app", "tag": tag}],
                }))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::test_support::freights;
    use super::*;
    use crate::kargo::freight::{Artifact, Selector};
    use crate::kargo::types::test_support::stage;

    fn now() -> Timestamp {
        "2025-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn choosing_by_name_and_alias_points_at_the_mixup() {
        let f = freights();
        let pick =
            |c: FreightChoice| choose(&c, &f, None, "shop", now()).map(|f| f.name().to_string());
        assert_eq!(pick(FreightChoice::Name("f2".into())), Ok("f2".into()));
        assert_eq!(
            pick(FreightChoice::Alias("tall-fox".into())),
            Ok("f1".into())
        );
        let err = pick(FreightChoice::Name("tall-fox".into())).unwrap_err();
        assert_eq!(err.attribute.unwrap().to_string(), "freight");
        assert!(err.detail.contains("use `freight_alias`"), "{}", err.detail);
        let err = pick(FreightChoice::Alias("f1".into())).unwrap_err();
        assert_eq!(err.attribute.unwrap().to_string(), "freight_alias");
        assert!(err.detail.contains("use `freight`"), "{}", err.detail);
        let err = pick(FreightChoice::Name("nope".into())).unwrap_err();
        assert!(
            err.detail
                .contains("Project \"shop\" has no freight named \"nope\"")
        );
    }

    #[test]
    fn selectors_and_origins_need_what_they_need() {
        let f = freights();
        let sel = FreightChoice::Selector(Selector {
            warehouse: "app".into(),
            artifact: Artifact::Image {
                repo_url: "ghcr.io/acme/app".into(),
            },
            version_constraint: Some("~1.0".into()),
            available_only: true,
            strict_semvers: true,
        });
        assert_eq!(choose(&sel, &f, None, "shop", now()).unwrap().name(), "f1");
        let origin = FreightChoice::Origin("app".into());
        let err = choose(&origin, &f, None, "shop", now()).unwrap_err();
        assert_eq!(err.attribute.unwrap().to_string(), "origin_warehouse");
        let stage = stage(json!({
            "metadata": {"name": "dev", "namespace": "shop"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"direct": true}}],
                     "promotionTemplate": {"spec": {"steps": [{"uses": "git-clone"}]}}},
        }));
        let picked = choose(&origin, &f, Some(&stage), "shop", now()).unwrap();
        assert!(["f1", "f2"].contains(&picked.name()));
        let none = FreightChoice::Selector(Selector {
            warehouse: "other".into(),
            artifact: Artifact::Git {
                repo_url: "https://github.com/acme/app".into(),
            },
            version_constraint: None,
            available_only: true,
            strict_semvers: true,
        });
        let err = choose(&none, &f, Some(&stage), "shop", now()).unwrap_err();
        assert_eq!(err.summary, "No freight matches the selector");
        assert!(err.detail.contains("warehouse \"other\""), "{}", err.detail);
    }
}
