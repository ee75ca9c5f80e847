//! `kargo_promotion`: "this stage should be at this freight". The plan resolves the freight and
//! shows what changes; apply creates a Promotion and waits for it; destroy never rolls back.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::common::{self, IMPORTING, dns_label, explain, fail, no_field, timeout, timeouts_block};
use super::validators::object_name;
use crate::config::ProviderData;
use crate::duration::format_go_duration;
use crate::kargo::freight::{Availability, availability, changes};
use crate::kargo::{
    Error as KargoError, Freight, KargoClient, Object as _, ObjectMeta, Origin, Promotion,
    PromotionSpec, Stage, WatchStep,
};
use crate::plugin::plan::{plan_from_schema, requires_replace_paths, values_equal};
use crate::plugin::{
    ApplyResult, Attribute, AttributePath, Block, Context, Diagnostic, Diagnostics, ImportResult,
    NestedObject, PlanRequest, PlanResponse, ReadResult, Resource, Schema, Value,
};
use crate::resolve::choice::{
    artifacts_attribute, changes_attribute, choice_changed, freight_choice,
    freight_choice_validator, freight_summary_attribute, set_alias_output,
};
use crate::resolve::values::{
    artifacts_value, changes_value, promotion_summary, stage_freight_value, summary_value,
};
use crate::resolve::{
    self, FREIGHT, FREIGHT_ALIAS, FREIGHT_SELECTOR, FreightChoice, HoldIntent, ORIGIN_WAREHOUSE,
    Resolution, Unresolvable, Way,
};

const CREATE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Planned private data of a promotion about to be replaced: its destroy is half of the
/// replacement, and the new promotion decides what becomes of any auto-promotion hold.
const REPLACING: &[u8] = b"replacing";
const RESUME_ON_DESTROY: &str = "resume_auto_promotion_on_destroy";
/// On every Promotion the provider creates: which promotion of which resource it is (see
/// [`idempotency_key`]), so that a create whose answer was lost is found, not repeated.
pub const IDEMPOTENCY_ANNOTATION: &str = "terraform-provider-kargo/idempotency-key";
/// The label that finds a Promotion by its key without listing the whole project: a digest of
/// the key, since a label value is at most 63 characters of a narrow alphabet.
pub const IDEMPOTENCY_LABEL: &str = "terraform-provider-kargo/idempotency-key";

/// The value of [`IDEMPOTENCY_LABEL`] for `key`.
fn idempotency_label(key: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(key)[..20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
/// The longest one create request may go unanswered before the provider looks for what it did.
const CREATE_REQUEST_DEADLINE: Duration = Duration::from_secs(60);
/// How long an interrupted create may still look for the Promotion it was creating.
const INTERRUPTED_LOOKUP_DEADLINE: Duration = Duration::from_secs(15);
const FIRST_CREATE_RETRY: Duration = Duration::from_millis(250);
const MAX_CREATE_RETRY: Duration = Duration::from_secs(5);
const WAYS: [Way; 4] = [Way::Name, Way::Alias, Way::Selector, Way::Origin];

/// Attributes only the provider sets.
const COMPUTED: [&str; 13] = [
    "id",
    "manifest_changes",
    "preview_result",
    "freight_name",
    "artifacts",
    "stage_freight",
    "changes",
    "summary",
    "promotion_name",
    "phase",
    "message",
    "started_at",
    "finished_at",
];
/// Computed attributes that describe the freight and are settled at plan time.
const RESOLVED: [&str; 5] = [
    "freight_name",
    "artifacts",
    "stage_freight",
    "changes",
    "summary",
];
/// Computed attributes that describe the Promotion object, known once it exists.
const RUN: [&str; 6] = [
    "id",
    "promotion_name",
    "phase",
    "message",
    "started_at",
    "finished_at",
];

const DESCRIPTION: &str = "\
Promotes freight into a Kargo stage and keeps it there: \"this stage should be at this freight\".

The freight is chosen by name (`freight`), alias (`freight_alias`), an artifact it carries \
(`freight_selector`) or as Kargo's auto-promotion would pick it (`origin_warehouse`), and is \
resolved against the cluster **at plan time**: the plan shows the freight (`freight_name`, \
`artifacts`), what the stage holds now (`stage_freight`) and what the promotion changes \
(`changes`), and it refuses freight the stage cannot take, saying why (not verified or not yet \
soaked upstream, not approved, a warehouse the stage does not request). When the cluster cannot \
be asked yet (unreachable, Kargo not installed, or the stage created by the same apply), the \
plan succeeds with these values known after apply and a warning that says why.

A Promotion is create-only. Different freight means a new Promotion, and so does a stage that \
moved away from this freight after the promotion finished (promoted from Kargo's UI or CLI, or \
by auto-promotion) and a promotion that failed or was aborted. Only `wait`, `timeouts`, \
`abort_on_destroy` and `resume_auto_promotion_on_destroy` change in place. Apply waits for the promotion to finish (see `wait`): a \
failed promotion fails the apply with the failing step and Kargo's message and leaves the \
resource tainted, so the next apply promotes again. When the wait times out or is interrupted, \
the promotion keeps running in Kargo; the apply warns, and the next plan reads where it got to.

**Auto-promoted stages (Kargo v1.11+).** Promoting freight that is not the stage's \
auto-promotion candidate (the freight Kargo would auto-promote, usually the newest available) \
is a rollback that sticks: Kargo marks the Promotion with `kargo.akuity.io/auto-promotion-hold` \
and, once it has run, records an auto-promotion hold on the warehouse in the stage's status, so \
auto-promotion does not move the stage away again. The plan warns when this will happen. The \
hold lasts until freight that is the candidate is promoted into the stage (Kargo marks that \
Promotion `kargo.akuity.io/auto-promotion-resume`): a promotion to the candidate, for example \
by `origin_warehouse`, releases it, and so does destroying this resource with \
`resume_auto_promotion_on_destroy = true`. `kargo_stage.auto_promotion_holds` shows the holds.

A Promotion is started at most once per apply. Kargo generates its name, so each Promotion the \
provider creates carries the annotation `terraform-provider-kargo/idempotency-key` \
(`<stage>/<freight>/<digest>`), and a label of the same name holding a digest of that key, \
by which it is looked up. Terraform does not tell a provider which resource it is \
planning, so the key is made of what the configuration says: the stage, the freight, and a \
digest (12 hexadecimal digits of SHA-256) of how the freight is chosen (`freight`, \
`freight_alias`, `freight_selector` or `origin_warehouse`, with its value). Attributes that \
change in place (`wait`, `timeouts`, `abort_on_destroy`, `resume_auto_promotion_on_destroy`, \
`preview`) are not part of it. When the answer to a create is lost (a 5xx, a dropped \
connection, no answer within `timeouts.create`, Ctrl-C), the create is not simply sent again: a \
Promotion with that key that was not there before is the one created, and it is recorded. A \
Promotion an interrupted apply created but did not record is adopted by the next plan (it names \
it, with a warning) as long as it runs, or finished and the stage holds its freight; so that \
the next plan finds it, keep the freight choice as it was. Two `kargo_promotion` resources \
that promote the same freight into the same stage chosen another way (say one by `freight`, \
the other by `freight_alias`) have two keys and create two Promotions. Two that choose it the \
same way would have one key, so the plan fails on the second with \"Promotion declared \
twice\": remove one of them.

Destroy never rolls the stage back: it aborts the promotion if it is still running (see \
`abort_on_destroy`) and forgets it; Promotion objects are left to Kargo. Kargo garbage-collects \
old Promotions (it keeps about 20 per stage); a collected Promotion is not promoted again while \
the stage still holds its freight.

Kargo requires the custom `promote` verb on `stages` in the project namespace (besides `create` \
on `promotions`); the built-in `kargo-promoter` role has it. Import with \
`<project>/<promotion name>`.";

/// The `kargo_promotion` resource.
pub struct PromotionResource {
    data: ProviderData,
    schema: Schema,
}

impl PromotionResource {
    pub fn new(data: ProviderData) -> Self {
        Self {
            data,
            schema: Schema::new(common::SCHEMA_VERSION, Self::schema_block()),
        }
    }

    fn schema_block() -> Block {
        let mut attrs = vec![
            Attribute::string("id").computed().description(
                "`<project>/<promotion name>`, known once the Promotion has been created.",
            ),
            Attribute::string("project")
                .required()
                .requires_replace()
                .validate(dns_label())
                .description(
                    "The project (namespace) the stage belongs to. Changing it creates a new \
                     promotion.",
                ),
            Attribute::string("stage")
                .required()
                .requires_replace()
                .validate(object_name())
                .description(
                    "The stage to promote into. It must have promotion steps (a control-flow \
                     stage cannot be promoted to). Changing it creates a new promotion.",
                ),
        ];
        let choice = freight_choice(&WAYS, "the freight to promote");
        for mut a in choice.attributes {
            if a.name == FREIGHT_ALIAS {
                // Also an output: the alias of the freight however it was chosen.
                a = a.computed().description(
                    "Choose the freight to promote by its alias (e.g. `tall-fox`), as Kargo's UI \
                     and CLI show it. When the freight is chosen another way, the alias of the \
                     freight it resolved to.",
                );
            }
            attrs.push(a);
        }
        let timeouts = timeouts_block(
            "How long apply waits for the promotion to finish (with `wait`). When it passes, the \
             promotion keeps running in Kargo and the apply warns. Default `30m`.",
            "How long destroy waits for an aborted promotion to stop. Default `5m`.",
        );
        attrs.extend([
            Attribute::bool("wait").default(Value::Bool(true)).description(
                "Wait for the promotion to finish (Succeeded, or Failed, Errored or Aborted, which \
                 fail the apply), bounded by `timeouts.create`. Default `true`. Changing it \
                 never creates a new promotion.",
            ),
            Attribute::bool("abort_on_destroy")
                .default(Value::Bool(true))
                .description(
                    "On destroy, abort the promotion if it is still pending or running, and wait \
                     (bounded by `timeouts.delete`) until it has stopped. `false` leaves it \
                     running. Destroy never rolls the stage back either way. Default `true`.",
                ),
            Attribute::bool(RESUME_ON_DESTROY)
                .default(Value::Bool(false))
                .description(
                    "On destroy, when this promotion placed the auto-promotion hold the stage \
                     still has on its warehouse (see above), release it: promote the stage's \
                     auto-promotion candidate, as Kargo's auto-promotion would have, and wait for \
                     it (bounded by `timeouts.delete`, unless `wait = false`). Nothing happens \
                     when the promotion is replaced rather than destroyed (the new promotion \
                     decides: one to the candidate releases the hold anyway, another holds \
                     again) or when another promotion has placed or released the hold since. \
                     Default `false`: destroying a resource never deploys anything, so a \
                     rollback stays in place until the candidate is promoted on purpose. \
                     Changing it never creates a new promotion.",
                ),
            Attribute::string("freight_name")
                .computed()
                .requires_replace()
                .description(
                    "Name (ID) of the freight promoted, resolved at plan time. Different freight \
                     means a new promotion.",
                ),
            artifacts_attribute("artifacts", "The artifacts of the freight promoted."),
            freight_summary_attribute(
                "stage_freight",
                "What the stage runs from the promoted freight's warehouse: at plan time the \
                 freight it holds before this promotion, refreshed from the stage afterwards. \
                 Null when the stage holds nothing from there.",
            ),
            changes_attribute(
                "changes",
                "What the promotion changes in the stage, one entry per artifact whose version \
                 differs between the freight the stage held when it was planned and the freight \
                 promoted. Empty when the stage already held it.",
            ),
            Attribute::string("summary").computed().description(
                "The promotion in one line, resolved at plan time with `changes` and kept as \
                 it was planned: `<stage>: freight <alias> (<artifacts>) → <alias> \
                 (<artifacts>)`, e.g. `production: freight wonky-wombat (ghcr.io/org/app 1.2.0) \
                 → clever-koala (ghcr.io/org/app 1.3.0)`. Each freight is named by its alias \
                 (its name when it has none), `no freight` when the stage held nothing from the \
                 warehouse, and its artifacts are listed as `repo tag` for images, `repo tag` or \
                 `repo short-id` for Git commits and `repo/name version` for charts: only those \
                 that change, or all of them when none does. `<stage>: already at <alias>` when \
                 the stage already held the freight. Null for an imported promotion.",
            ),
            Attribute::bool("preview").default(Value::Bool(true)).description(
                "Preview at plan time what the promotion would commit (`manifest_changes`, \
                 `preview_result`). Default `true`; the provider's `promotion_preview` block can \
                 turn previews off for every promotion. Changing it never creates a new \
                 promotion.",
            ),
            Attribute::nested(
                "manifest_changes",
                NestedObject::list(vec![
                    Attribute::string("repo_url")
                        .computed()
                        .description("The Git repository the promotion would push to."),
                    Attribute::string("branch").computed().description(
                        "The branch it would push to, or `generated` when the promotion \
                         generates one (`generateTargetBranch`).",
                    ),
                    Attribute::string("path")
                        .computed()
                        .description("The file, relative to the repository's root."),
                    Attribute::string("action")
                        .computed()
                        .description("`modified`, `added` or `deleted`."),
                    Attribute::string("diff").computed().description(
                        "Unified diff of the file with 3 lines of context, cut past 20000 \
                         characters with a note. Null for a binary file.",
                    ),
                ]),
            )
            .computed()
            .description(
                "What the promotion would commit, one entry per changed file, resolved at plan \
                 time by a local dry run of the stage's promotion steps with the freight \
                 (see `preview_result` for how complete it is) and kept as planned. Empty when \
                 the preview is unavailable; null when previews are off.",
            ),
            Attribute::nested(
                "preview_result",
                NestedObject::single(vec![
                    Attribute::string("status").computed().description(
                        "`complete` (every step ran or, for Git writes, was simulated), \
                         `partial` (some steps did not run; every change made by the others is \
                         shown) or `unavailable` (nothing could be previewed).",
                    ),
                    Attribute::string_list("reasons").computed().description(
                        "Why the preview is partial or unavailable: the steps that did not run \
                         and why (e.g. `argocd-update: needs Argo CD`), or why nothing could be \
                         previewed (repository unreachable, refused credentials, stage created \
                         by this apply).",
                    ),
                    Attribute::string_list("actions").computed().description(
                        "What the promotion would do besides the files, e.g. `git-push: would \
                         push to branch main of https://…`.",
                    ),
                ]),
            )
            .computed()
            .description(
                "How complete the plan-time preview in `manifest_changes` is, kept as planned. \
                 Null when previews are off.",
            ),
            Attribute::string("promotion_name").computed().description(
                "Name of the Promotion Kargo created (`<stage>.<id>.<freight>`).",
            ),
            Attribute::string("phase").computed().description(
                "The promotion's phase: `Pending`, `Running`, `Succeeded`, `Failed`, `Errored` or \
                 `Aborted`.",
            ),
            Attribute::string("message")
                .computed()
                .description("Kargo's message about the promotion, e.g. why it failed."),
            Attribute::string("started_at")
                .computed()
                .description("When the promotion started running (RFC 3339)."),
            Attribute::string("finished_at")
                .computed()
                .description("When the promotion finished (RFC 3339)."),
        ]);
        let mut block = Block::new(attrs)
            .description(DESCRIPTION)
            .validate(freight_choice_validator(&WAYS));
        block.blocks = choice.blocks;
        block.block(timeouts)
    }

    /// Asks the cluster which freight the configuration means, for the plan.
    async fn look_up(&self, config: &Value) -> Lookup {
        let (Some(project), Some(stage_name)) =
            (config.get("project").as_str(), config.get("stage").as_str())
        else {
            return Lookup::Unresolved(None);
        };
        let Some(choice) = FreightChoice::from_config(config) else {
            return Lookup::Unresolved(None);
        };
        let unresolved = |why: String| Lookup::Unresolved(Some(not_resolved_warning(&why)));
        if !self.data.configuration_known() {
            return unresolved(
                "The provider configuration depends on values known only after apply, so the \
                 cluster cannot be asked yet."
                    .into(),
            );
        }
        let client = match self.data.client() {
            Ok(c) => c,
            Err(e) => {
                return unresolved(format!(
                    "The cluster cannot be asked: {}",
                    full_stop(explain(&e))
                ));
            }
        };
        match resolve::for_stage(&client, project, stage_name, &choice).await {
            Ok(r) => Lookup::Resolved(Box::new(r)),
            Err(Unresolvable::StageMissing) => unresolved(format!(
                "Stage {stage_name:?} does not exist in project {project:?} yet (it may be \
                 created by this apply)."
            )),
            Err(Unresolvable::StageUnread(e)) => unresolved(format!(
                "Stage {stage_name:?} could not be read: {}",
                full_stop(explain(&e))
            )),
            Err(Unresolvable::FreightUnlisted(e)) => unresolved(format!(
                "The freight of project {project:?} could not be listed: {}",
                full_stop(explain(&e))
            )),
            Err(Unresolvable::ClockUnread(e)) => unresolved(format!(
                "The cluster's clock could not be read: {}",
                full_stop(explain(&e))
            )),
            Err(Unresolvable::NoFreight(d)) => Lookup::Failed(d),
        }
    }

    /// What became of the prior promotion, when the plan needs to know.
    async fn prior_run(&self, prior: &Value) -> PriorRun {
        let (Some(project), Some(name)) = (
            prior.get("project").as_str(),
            prior.get("promotion_name").as_str(),
        ) else {
            return PriorRun::Gone;
        };
        let client = match self.data.client() {
            Ok(c) => c,
            Err(e) => return PriorRun::Unknown(explain(&e)),
        };
        // The refresh just before this plan read the promotion fresh.
        match client.get_shared::<Promotion>(Some(project), name).await {
            Ok(Some(p)) => match p.phase() {
                Some(phase) if p.is_terminal() => PriorRun::Finished(phase.to_string()),
                phase => PriorRun::Running(phase.unwrap_or("Pending").to_string()),
            },
            Ok(None) => PriorRun::Gone,
            Err(e) => PriorRun::Unknown(explain(&e)),
        }
    }

    /// Destroy's first half: abort the promotion if it still runs (with `abort_on_destroy`).
    async fn abort(&self, ctx: &Context, prior: &Value) -> Diagnostics {
        if prior.get("abort_on_destroy").as_bool() == Some(false) {
            return Diagnostics::default();
        }
        let (Some(project), Some(name)) = (
            prior.get("project").as_str(),
            prior.get("promotion_name").as_str(),
        ) else {
            return Diagnostics::default();
        };
        let stage = prior.str_or_empty("stage");
        let client = match self.data.client() {
            Ok(c) => c,
            Err(e) => return common::diagnostics("connect to the cluster", &e, &no_field),
        };
        let running = match client.get::<Promotion>(Some(project), name).await {
            Ok(Some(p)) => !p.is_terminal(),
            Ok(None) => false,
            Err(e) => return common::diagnostics("read the promotion", &e, &no_field),
        };
        if !running {
            return Diagnostics::default();
        }
        match client.abort_promotion(project, name).await {
            Ok(()) => {}
            Err(KargoError::NotFound { .. }) => return Diagnostics::default(),
            Err(e @ KargoError::NotPermittedToPromote { .. }) => {
                return Diagnostic::error(
                    "Not permitted to abort the promotion",
                    format!(
                        "Aborting promotion {name:?} is an update, which Kargo allows only with \
                         the `promote` verb on `stages/{stage}` in namespace {project:?}: {} \
                         Set `abort_on_destroy = false` to leave it running instead.",
                        explain(&e)
                    ),
                )
                .into();
            }
            Err(e) => return common::diagnostics("abort the promotion", &e, &no_field),
        }
        let limit = timeout(prior, "delete", DELETE_TIMEOUT);
        let what = format!("aborted promotion {name:?} to stop");
        match client
            .wait_until(
                Some(project),
                name,
                &what,
                limit,
                &ctx.cancel,
                |p: Option<&Promotion>| p.is_none_or(Promotion::is_terminal),
            )
            .await
        {
            Ok(_) => Diagnostics::default(),
            Err(KargoError::Cancelled) => Diagnostic::error(
                "Stopped waiting for the promotion to abort",
                format!(
                    "Promotion {name:?} was asked to abort; Kargo carries that out on its own. \
                     Run destroy again to confirm it has stopped."
                ),
            )
            .into(),
            Err(e) => Diagnostic::error(
                "Promotion did not stop",
                format!(
                    "Promotion {name:?} was asked to abort but {}. Check that Kargo's \
                     controller is running and run destroy again, or set \
                     `abort_on_destroy = false` to leave it.",
                    explain(&e)
                ),
            )
            .into(),
        }
    }

    /// Destroy's second half, with `resume_auto_promotion_on_destroy`: when the stage's
    /// auto-promotion hold is the one this promotion placed, promote the stage's auto-promotion
    /// candidate from that warehouse, which Kargo marks as releasing the hold.
    async fn resume_auto_promotion(&self, ctx: &Context, prior: &Value) -> Diagnostics {
        let (Some(project), Some(name), Some(stage_name)) = (
            prior.get("project").as_str(),
            prior.get("promotion_name").as_str(),
            prior.get("stage").as_str(),
        ) else {
            return Diagnostics::default();
        };
        let client = match common::write_client(&self.data, ctx).await {
            Ok(c) => c,
            Err(e) => return common::diagnostics("connect to the cluster", &e, &no_field),
        };
        let stage = match client.get::<Stage>(Some(project), stage_name).await {
            Ok(Some(s)) => s,
            // No stage, no hold.
            Ok(None) => return Diagnostics::default(),
            Err(e) => return common::diagnostics("read the stage", &e, &no_field),
        };
        let Some(hold) = stage
            .status
            .auto_promotion_holds
            .values()
            .find(|h| h.promotion_name.as_deref() == Some(name))
        else {
            // Released already, or replaced by another promotion's hold: not ours to release.
            return Diagnostics::default();
        };
        let key = hold.origin.key();
        let not_resumed = |why: String| -> Diagnostics {
            Diagnostic::error(
                "Auto-promotion not resumed",
                format!(
                    "Stage {stage_name:?} keeps the auto-promotion hold on {key} placed by \
                     promotion {name:?}: {why} Run destroy again once that is fixed, or set \
                     `resume_auto_promotion_on_destroy = false` to leave the hold."
                ),
            )
            // Destroy has no configuration to point into.
            .into()
        };
        let choice = FreightChoice::Origin(hold.origin.name.clone());
        let r = match resolve::for_stage(&client, project, stage_name, &choice).await {
            Ok(r) => r,
            Err(failure) => {
                let d = failure.diagnostic(project, stage_name, "promote", AttributePath::root());
                return not_resumed(format!("{} {}", d.summary, d.detail));
            }
        };
        let candidate = r.target.name().to_string();
        let body = Promotion {
            metadata: ObjectMeta {
                generate_name: Some(format!("{stage_name}-")),
                ..ObjectMeta::default()
            },
            spec: PromotionSpec {
                stage: Some(stage_name.to_string()),
                freight: Some(candidate.clone()),
                ..PromotionSpec::default()
            },
            ..Promotion::default()
        };
        let created = match client.create(Some(project), &body).await {
            Ok(c) => c,
            Err(e) => {
                return not_resumed(format!(
                    "promoting the auto-promotion candidate {} failed: {}.",
                    r.target.describe(),
                    explain(&e)
                ));
            }
        };
        let resume = created.name().to_string();
        tracing::info!(promotion = %resume, stage = %stage_name, freight = %candidate, "auto-promotion resumed");
        if prior.get("wait").as_bool() == Some(false) {
            return Diagnostics::default();
        }
        let limit = timeout(prior, "delete", DELETE_TIMEOUT);
        let what = format!("promotion {resume:?} into stage {stage_name:?} to finish");
        let done = client
            .wait_until(
                Some(project),
                &resume,
                &what,
                limit,
                &ctx.cancel,
                |p: Option<&Promotion>| p.is_none_or(Promotion::is_terminal),
            )
            .await;
        match done {
            Ok(Some(p)) if p.phase() != Some("Succeeded") => Diagnostic::error(
                "Auto-promotion resumed, but its promotion failed",
                format!(
                    "The auto-promotion hold on {key} is released, but {}.",
                    failure_text(&p, stage_name)
                ),
            )
            .into(),
            Ok(_) => Diagnostics::default(),
            Err(e) => Diagnostic::warning(
                "Auto-promotion resumed; its promotion still running",
                format!(
                    "Promotion {resume:?} of {} releases the auto-promotion hold on {key}; \
                     waiting for it ended: {}. It keeps running in Kargo.",
                    r.target.describe(),
                    explain(&e)
                ),
            )
            .into(),
        }
    }

    /// A promotion to create that an interrupted apply already created and did not record
    /// (found by its key, still running, or finished and in place) is adopted: the plan names
    /// it, and apply records it instead of starting another.
    async fn adopt_at_plan(
        &self,
        planned: &mut Value,
        freight: &str,
        stage: &Stage,
        key: &str,
        diags: &mut Diagnostics,
    ) {
        let project = planned.str_or_empty("project").to_string();
        let stage_name = stage.name().to_string();
        let Ok(client) = self.data.client() else {
            return;
        };
        // Not finding out is no reason to fail the plan: apply looks again before creating.
        // One list of the project's promotions serves every promotion this plan creates.
        let Ok(list) = client.list_shared::<Promotion>(Some(&project), None).await else {
            return;
        };
        let found = with_key(list.items, &stage_name, freight, key);
        let in_place = |p: &Promotion| {
            p.phase() == Some("Succeeded") && stage.holds(freight) && recorded_by(stage, p.name())
        };
        let Some(found) = found
            .into_iter()
            .rev()
            .find(|p| !p.is_terminal() || in_place(p))
        else {
            return;
        };
        let name = found.name();
        planned.set("promotion_name", Value::string(name));
        planned.set("id", Value::string(format!("{project}/{name}")));
        diags.push(Diagnostic::warning(
            "Promotion already created",
            format!(
                "Promotion {name:?} of freight {freight:?} into stage {stage_name:?} was created \
                 by an earlier apply that did not record it (annotation \
                 {IDEMPOTENCY_ANNOTATION}={key:?}). Apply adopts it instead of starting another."
            ),
        ));
    }

    /// Resolves at apply what the plan could not (its values were unknown then).
    async fn resolve_for_apply(
        &self,
        client: &KargoClient,
        planned: &Value,
        config: &Value,
    ) -> Result<Resolution, Diagnostic> {
        let project = planned.str_or_empty("project");
        let stage_name = planned.str_or_empty("stage");
        let choice = match planned.get("freight_name").as_str() {
            // What the plan showed is what gets promoted.
            Some(name) => FreightChoice::Name(name.to_string()),
            None => FreightChoice::from_config(config).ok_or_else(|| {
                Diagnostic::error(
                    "Freight to promote not chosen",
                    "Exactly one of `freight`, `freight_alias`, `freight_selector` and \
                     `origin_warehouse` must be set.",
                )
            })?,
        };
        let path = choice_path(config);
        let r = resolve::for_stage(client, project, stage_name, &choice)
            .await
            .map_err(|failure| failure.diagnostic(project, stage_name, "promote", path.clone()))?;
        if let Availability::Unavailable(reason) = availability(&r.stage, &r.target, r.now) {
            return Err(unavailable(&reason, path));
        }
        Ok(r)
    }
}

/// A warning when the preview could not show everything, so the plan says so up front.
fn preview_warning(result: &Value) -> Option<Diagnostic> {
    let status = result.get("status").as_str()?;
    if status == "complete" {
        return None;
    }
    let reasons: Vec<String> = result
        .get("reasons")
        .elements()
        .iter()
        .filter_map(|r| r.as_str().map(|r| format!("- {r}")))
        .collect();
    Some(
        Diagnostic::warning(
            if status == "partial" {
                "Promotion preview partial"
            } else {
                "Promotion preview unavailable"
            },
            format!(
                "The manifest changes shown are {}:\n{}",
                if status == "partial" {
                    "those of the steps the preview could run"
                } else {
                    "unknown until the promotion runs"
                },
                reasons.join("\n")
            ),
        )
        .at(AttributePath::attr("manifest_changes")),
    )
}

impl PromotionResource {
    /// `manifest_changes` and `preview_result` of a new promotion: null when previews are
    /// off, the dry run's outcome when the freight was resolved, unavailable (with why)
    /// otherwise.
    async fn preview(
        &self,
        config: &Value,
        input: Result<(Stage, Freight), String>,
    ) -> (Value, Value) {
        let off = config.get("preview").as_bool() == Some(false);
        let settings = match self.data.preview() {
            Some(s) if s.enabled && !off => s,
            Some(_) => return (Value::Null, Value::Null),
            None if off => return (Value::Null, Value::Null),
            // The provider's `promotion_preview` block is known only at apply.
            None => return (Value::Unknown, Value::Unknown),
        };
        let outcome = match input {
            Ok((stage, freight)) => match self.data.client() {
                Ok(client) => super::preview::run(&client, settings, &stage, &freight).await,
                Err(e) => crate::steps::preview::Outcome::unavailable(format!(
                    "the cluster cannot be asked: {}",
                    explain(&e)
                )),
            },
            // Resolved (and previewed) by the plan Terraform makes again at apply; until
            // then the values are unknown and the warning says why.
            Err(why) => {
                let outcome = crate::steps::preview::Outcome::unavailable(why);
                let (_, result) = super::preview::values(&outcome);
                return (Value::Unknown, result);
            }
        };
        super::preview::values(&outcome)
    }
}

/// The freight a configuration means, as far as the cluster could tell at plan time.
pub(crate) enum Lookup {
    /// Decided only at apply: configuration values unknown, or the cluster could not be asked
    /// (with the warning saying why).
    Unresolved(Option<Diagnostic>),
    /// The choice designates no freight (the diagnostic says what was found).
    Failed(Diagnostic),
    Resolved(Box<Resolution>),
}

/// The prior promotion, for a stage that does not hold its freight.
pub(crate) enum PriorRun {
    /// Not looked at: not needed.
    NotNeeded,
    /// Pending or running (the phase).
    Running(String),
    /// Finished, in this phase.
    Finished(String),
    /// No longer there (garbage-collected), or never recorded.
    Gone,
    /// Could not be read (why).
    Unknown(String),
}

/// The ULID in a Promotion name (`<stage>.<ulid>.<freight7>`), which orders promotions by
/// creation.
fn promotion_ulid(name: &str) -> Option<String> {
    let mut parts = name.rsplit('.');
    parts.next()?;
    let ulid = parts.next()?;
    (ulid.len() == 26 && ulid.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| ulid.to_ascii_lowercase())
}

/// Whether the stage's status already reflects promotion `name` (or a later one).
fn recorded_by(stage: &Stage, name: &str) -> bool {
    let Some(last) = &stage.status.last_promotion else {
        return false;
    };
    if last.name == name {
        return true;
    }
    match (promotion_ulid(&last.name), promotion_ulid(name)) {
        (Some(l), Some(n)) => l > n,
        // Names Kargo did not generate cannot be ordered: trust the stage.
        _ => true,
    }
}

/// `text` ending in one full stop.
fn full_stop(text: String) -> String {
    if text.ends_with('.') {
        text
    } else {
        text + "."
    }
}

fn not_resolved_warning(why: &str) -> Diagnostic {
    Diagnostic::warning(
        "Freight to promote not resolved at plan time",
        format!(
            "{why} The freight, its artifacts and what changes in the stage are known after \
             apply, which resolves them and checks that the stage can take the freight."
        ),
    )
}

fn unavailable(reason: &str, path: AttributePath) -> Diagnostic {
    Diagnostic::error("Freight not available to the stage", reason.to_string()).at(path)
}

/// The attribute the freight was chosen with (`freight` when that cannot be told).
fn choice_path(config: &Value) -> AttributePath {
    FreightChoice::from_config(config)
        .map(|c| c.path())
        .or_else(|| {
            [FREIGHT, FREIGHT_ALIAS, FREIGHT_SELECTOR, ORIGIN_WAREHOUSE]
                .into_iter()
                .find(|a| !config.get(a).is_null())
                .map(AttributePath::attr)
        })
        .unwrap_or_else(|| AttributePath::attr(FREIGHT))
}

fn copy_attrs(planned: &mut Value, from: &Value, names: &[&str]) {
    for name in names {
        planned.set(name, from.get(name).clone());
    }
}

fn set_unknown(planned: &mut Value, names: &[&str]) {
    for name in names {
        planned.set(name, Value::Unknown);
    }
}

/// The resolved values of a new promotion of `r.target`.
fn fill_resolved(planned: &mut Value, config: &Value, r: &Resolution, only_unknown: bool) {
    let target = &r.target;
    let current = r.current.as_ref();
    let values = [
        ("freight_name", Value::string(target.name())),
        ("artifacts", artifacts_value(target)),
        ("stage_freight", current.map_or(Value::Null, summary_value)),
        ("changes", changes_value(&changes(current, target))),
        (
            "summary",
            Value::string(promotion_summary(r.stage.name(), current, target)),
        ),
    ];
    for (name, value) in values {
        if !only_unknown || planned.get(name).is_unknown() {
            planned.set(name, value);
        }
    }
    if !only_unknown || planned.get(FREIGHT_ALIAS).is_unknown() {
        let alias = target.alias().map_or(Value::Null, Value::string);
        set_alias_output(planned, config, alias);
    }
}

/// The plan proper, on what the cluster said: a new promotion (create or replace) or the
/// prior one kept. `base` is the schema-driven plan (configuration and defaults).
pub(crate) fn decide(
    block: &Block,
    config: &Value,
    prior: &Value,
    base: &Value,
    lookup: Lookup,
    prior_run: PriorRun,
) -> (Value, Vec<AttributePath>, Diagnostics) {
    let is_create = prior.is_null();
    // Another stage (or project) is another promotion, whatever the freight.
    let moved = !is_create
        && (!values_equal(base.get("project"), prior.get("project"))
            || !values_equal(base.get("stage"), prior.get("stage")));
    let mut planned = base.clone();
    let mut diags = Diagnostics::default();
    let mut replace = Vec::new();
    let new_promotion = |planned: &mut Value, replace: &mut Vec<AttributePath>| {
        set_unknown(planned, &RUN);
        if !is_create {
            replace.push(AttributePath::attr("promotion_name"));
        }
    };
    match lookup {
        Lookup::Failed(d) => {
            diags.push(d);
            return (planned, replace, diags);
        }
        Lookup::Unresolved(warning) => {
            // Said only when something is applied: a promotion that stands as it was has
            // nothing known after apply (and a refresh that could not ask the cluster warned).
            if is_create || moved || choice_changed(&WAYS, base, config, prior) {
                if let Some(w) = warning {
                    diags.push(w);
                }
                set_unknown(&mut planned, &RESOLVED);
                set_alias_output(&mut planned, config, Value::Unknown);
                if let Some(name) = config.get(FREIGHT).as_str() {
                    planned.set("freight_name", Value::string(name));
                }
                new_promotion(&mut planned, &mut replace);
            } else {
                copy_attrs(&mut planned, prior, &COMPUTED);
            }
        }
        Lookup::Resolved(r) => {
            let target = &r.target;
            let again = if is_create
                || moved
                || prior.get("freight_name").as_str() != Some(target.name())
            {
                true
            } else if r.stage.holds(target.name()) {
                false
            } else {
                match prior_run {
                    PriorRun::Running(phase) => {
                        diags.push(Diagnostic::warning(
                            "Promotion still running",
                            format!(
                                "Promotion {:?} of freight {:?} into stage {:?} is still {phase}; \
                                 nothing changes until it finishes. The next plan reads where it \
                                 got to.",
                                prior.str_or_empty("promotion_name"),
                                target.name(),
                                r.stage.name()
                            ),
                        ));
                        false
                    }
                    PriorRun::Unknown(why) => {
                        diags.push(Diagnostic::warning(
                            "Promotion state unknown",
                            format!(
                                "Stage {:?} does not hold freight {:?}, and the state of promotion \
                                 {:?} could not be read ({why}); nothing is planned for it now.",
                                r.stage.name(),
                                target.name(),
                                prior.str_or_empty("promotion_name")
                            ),
                        ));
                        false
                    }
                    // Kargo records a finished promotion in the stage's status a moment
                    // later; until it has, the stage has not moved away from it.
                    PriorRun::Finished(phase)
                        if phase == "Succeeded"
                            && !recorded_by(&r.stage, prior.str_or_empty("promotion_name")) =>
                    {
                        false
                    }
                    PriorRun::Finished(_) | PriorRun::Gone | PriorRun::NotNeeded => true,
                }
            };
            if again {
                if let Availability::Unavailable(reason) = availability(&r.stage, target, r.now) {
                    diags.push(unavailable(&reason, choice_path(config)));
                    return (planned, replace, diags);
                }
                fill_resolved(&mut planned, config, &r, false);
                new_promotion(&mut planned, &mut replace);
                if let Some(w) = hold_warning(&r) {
                    diags.push(w.at(choice_path(config)));
                }
            } else {
                copy_attrs(&mut planned, prior, &COMPUTED);
            }
        }
    }
    if !is_create {
        for path in requires_replace_paths(block, prior, &planned) {
            if !replace.contains(&path) {
                replace.push(path);
            }
        }
    }
    (planned, replace, diags)
}

/// What Kargo will do to auto-promotion when the planned promotion runs, when it matters: a
/// hold on the warehouse (the freight is not the auto-promotion candidate), or the release of
/// the hold the stage has (it is).
fn hold_warning(r: &Resolution) -> Option<Diagnostic> {
    let stage = r.stage.name();
    let origin = &r.target.origin;
    let warehouse = &origin.name;
    let key = origin.key();
    match r.intent() {
        HoldIntent::None => None,
        HoldIntent::Hold(candidate) => {
            let passed_over = match candidate {
                Some(c) => format!("the candidate is {}", c.describe()),
                None => "there is no candidate right now".to_string(),
            };
            Some(Diagnostic::warning(
                "Promotion will hold auto-promotion",
                format!(
                    "Kargo auto-promotes into stage {stage:?}, and {} is not its auto-promotion \
                     candidate from warehouse {warehouse:?} ({passed_over}). Kargo will place an \
                     auto-promotion hold on {key} (annotation \
                     kargo.akuity.io/auto-promotion-hold on the Promotion), so the stage stays \
                     at this freight and is not auto-promoted from warehouse {warehouse:?} until \
                     the hold is released. Promoting the candidate releases it: a promotion \
                     chosen with `origin_warehouse`, Kargo's UI or CLI, or destroying this \
                     resource with `resume_auto_promotion_on_destroy = true`.",
                    r.target.describe()
                ),
            ))
        }
        HoldIntent::Resume => r.stage.hold_for(origin).map(|hold| {
            let by = hold
                .promotion_name
                .as_deref()
                .map(|p| format!(" placed by promotion {p:?}"))
                .unwrap_or_default();
            Diagnostic::warning(
                "Promotion will resume auto-promotion",
                format!(
                    "{} is the auto-promotion candidate of stage {stage:?} from warehouse \
                     {warehouse:?}, so this promotion releases the auto-promotion hold on {key}{by} \
                     (Kargo marks it kargo.akuity.io/auto-promotion-resume): afterwards Kargo \
                     auto-promotes new freight from warehouse {warehouse:?} into the stage again.",
                    r.target.describe()
                ),
            )
        }),
    }
}

/// Records the Promotion object in the state: its name and how far it got.
fn set_run(state: &mut Value, project: &str, promotion: &Promotion) {
    let text = |s: &Option<String>| s.as_deref().map_or(Value::Null, Value::string);
    let name = promotion.name();
    let status = &promotion.status;
    state.set("id", Value::string(format!("{project}/{name}")));
    state.set("promotion_name", Value::string(name));
    state.set("phase", text(&status.phase));
    state.set("message", text(&status.message));
    state.set("started_at", text(&status.started_at));
    state.set("finished_at", text(&status.finished_at));
}

/// `Promotion "x" into stage "dev" ended Failed at step "push": <message>`.
fn failure_text(promotion: &Promotion, stage: &str) -> String {
    let name = promotion.name();
    let phase = promotion.phase().unwrap_or("Failed");
    let failed_step = promotion
        .status
        .step_execution_metadata
        .iter()
        .rev()
        .find(|s| matches!(s.status.as_deref(), Some("Failed" | "Errored" | "Aborted")));
    let message = promotion
        .status
        .message
        .as_deref()
        .or_else(|| failed_step.and_then(|s| s.message.as_deref()))
        .unwrap_or("Kargo gave no message");
    let at = failed_step
        .and_then(|s| s.alias.as_deref())
        .map(|a| format!(" at step {a:?}"))
        .unwrap_or_default();
    format!("Promotion {name:?} into stage {stage:?} ended {phase}{at}: {message}")
}

/// A failed Promotion create, on the attribute it is about.
fn create_error(err: &KargoError, project: &str, stage: &str, config: &Value) -> Diagnostic {
    match err {
        KargoError::NotPermittedToPromote { message, .. } => Diagnostic::error(
            "Not permitted to promote",
            format!(
                "The provider's identity may not promote into stage {stage:?}: Kargo requires the \
                 custom `promote` verb on `stages` (API group kargo.akuity.io) for \
                 `stages/{stage}` in namespace {project:?}, besides `create` on `promotions`. \
                 Grant it with a Role and RoleBinding in {project:?} (rule: apiGroups \
                 [\"kargo.akuity.io\"], resources [\"stages\"], resourceNames [{stage:?}], \
                 verbs [\"promote\"]), or bind Kargo's `kargo-promoter` role. Kargo said: \
                 {message}"
            ),
        )
        .at(AttributePath::attr("stage")),
        KargoError::Invalid {
            message, causes, ..
        } if causes.iter().any(|c| c.field.starts_with("spec.freight"))
            || message.contains("not available") =>
        {
            Diagnostic::error(
                "Kargo refused the freight",
                format!(
                    "Kargo did not accept the freight for stage {stage:?}: {}",
                    explain(err)
                ),
            )
            .at(choice_path(config))
        }
        _ => common::diagnostic("create the promotion", err, &|field: &str| {
            field
                .starts_with("spec.stage")
                .then(|| AttributePath::attr("stage"))
        }),
    }
}

/// The idempotency key of a resource's promotion of `freight` into `stage`:
/// `<stage>/<freight>/<digest>`, the digest being 12 hexadecimal digits of the SHA-256 of how
/// `config` chooses the freight (`freight`, `freight_alias`, `freight_selector`,
/// `origin_warehouse`). Terraform does not tell a provider which resource it plans, so what
/// the configuration says is what sets one resource's promotion apart from another's of the
/// same freight, and the next plan after an interrupted apply computes the same key again.
/// Attributes that change in place (`wait`, `timeouts`, ...) are left out: changing them after
/// an interrupted apply still finds its Promotion. A Promotion with this key that did not exist
/// when a create began is that create's.
fn idempotency_key(config: &Value, stage: &str, freight: &str) -> String {
    use sha2::{Digest, Sha256};
    let choice: serde_json::Map<String, serde_json::Value> =
        [FREIGHT, FREIGHT_ALIAS, FREIGHT_SELECTOR, ORIGIN_WAREHOUSE]
            .into_iter()
            .map(|a| (a.to_string(), config.get(a).to_json().unwrap_or_default()))
            .collect();
    let digest = Sha256::digest(serde_json::Value::Object(choice).to_string());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{stage}/{freight}/{hex}")
}

/// Two resources of one configuration that would create Promotions with the same key.
fn declared_twice(key: &str, freight: &str, stage: &str, at: AttributePath) -> Diagnostic {
    Diagnostic::error(
        "Promotion declared twice",
        format!(
            "Another kargo_promotion in this configuration promotes freight {freight:?} into \
             stage {stage:?}, choosing it the same way. A Promotion is found again after an \
             interrupted apply by its idempotency key ({IDEMPOTENCY_ANNOTATION}={key:?}), made \
             of the stage, the freight and how the configuration chooses it, so these two would \
             share one. Remove one of them."
        ),
    )
    .at(at)
}

/// How the Promotion of a create came to be.
#[derive(Debug)]
enum Created {
    /// Created by this request.
    New(Promotion),
    /// Created earlier: by an attempt whose answer was lost, or by an interrupted apply.
    Found(Promotion),
    /// Found by its key after the apply was interrupted.
    FoundAfterInterrupt(Promotion),
}

/// The Promotions for `stage` and `freight` carrying `key`, oldest first.
async fn find_created(
    client: &KargoClient,
    project: &str,
    stage: &str,
    freight: &str,
    key: &str,
) -> Result<Vec<Promotion>, KargoError> {
    // Selected by the key's label, so a create reads its own Promotions, not the project's.
    let selector = format!("{IDEMPOTENCY_LABEL}={}", idempotency_label(key));
    let list = client.list_promotions(project, stage, &selector).await?;
    Ok(with_key(list.items, stage, freight, key))
}

/// The Promotions among `promotions` for `stage` and `freight` carrying `key`, oldest first.
fn with_key(promotions: Vec<Promotion>, stage: &str, freight: &str, key: &str) -> Vec<Promotion> {
    let mut found: Vec<Promotion> = promotions
        .into_iter()
        .filter(|p| {
            p.metadata()
                .annotations
                .as_ref()
                .and_then(|a| a.get(IDEMPOTENCY_ANNOTATION))
                .is_some_and(|k| k == key)
                && p.spec.stage.as_deref() == Some(stage)
                && p.spec.freight.as_deref() == Some(freight)
        })
        .collect();
    found.sort_by(|a, b| {
        (&a.metadata().creation_timestamp, a.name())
            .cmp(&(&b.metadata().creation_timestamp, b.name()))
    });
    found
}

/// The newest of `found` that is not in `before`.
fn newly_created(found: Vec<Promotion>, before: &[String]) -> Option<Promotion> {
    found
        .into_iter()
        .rev()
        .find(|p| !before.iter().any(|b| b == p.name()))
}

/// The Promotion to create. Kargo fills in the name, steps and vars; it only needs the stage
/// and the freight.
fn promotion_body(stage: &str, freight: &str, key: &str) -> Promotion {
    Promotion {
        metadata: ObjectMeta {
            generate_name: Some(format!("{stage}-")),
            annotations: Some([(IDEMPOTENCY_ANNOTATION.to_string(), key.to_string())].into()),
            labels: Some([(IDEMPOTENCY_LABEL.to_string(), idempotency_label(key))].into()),
            ..ObjectMeta::default()
        },
        spec: PromotionSpec {
            stage: Some(stage.to_string()),
            freight: Some(freight.to_string()),
            ..PromotionSpec::default()
        },
        ..Promotion::default()
    }
}

/// Creates the Promotion at most once. Kargo generates its name, so a create repeated after a
/// request that did reach the server would start a second promotion. First the Promotions with
/// the key are read: the one the plan adopted (`adopted`), or one still running, is taken as it
/// is; the others are remembered. Whenever an answer is lost (5xx, dropped connection, no answer
/// before the deadline, Ctrl-C), a Promotion with the key that was not there before is this
/// create's; only when there is none is the create sent again. Attempts are retried while
/// Kargo is starting or the answer was lost, until `deadline` (`timeouts.create`).
#[allow(clippy::too_many_arguments)]
async fn create_once(
    client: &KargoClient,
    ctx: &Context,
    project: &str,
    stage: &str,
    freight: &str,
    key: &str,
    adopted: Option<&str>,
    deadline: tokio::time::Instant,
) -> Result<Created, KargoError> {
    let body = promotion_body(stage, freight, key);
    let what = format!("Kargo to create the promotion of freight {freight:?} into stage {stage:?}");
    let api_deadline = tokio::time::Instant::now() + client.api_wait_timeout();
    let mut delay = FIRST_CREATE_RETRY;
    let mut last_error: Option<KargoError>;
    let before: Vec<String> = loop {
        match find_created(client, project, stage, freight, key).await {
            Ok(found) => {
                let taken = found
                    .iter()
                    .rev()
                    .find(|p| adopted.map_or(!p.is_terminal(), |name| p.name() == name));
                if let Some(p) = taken {
                    return Ok(Created::Found(p.clone()));
                }
                break found.iter().map(|p| p.name().to_string()).collect();
            }
            Err(e) if e.is_ambiguous_write() || e.is_transient_while_starting() => {
                last_error = Some(e);
                if !pause(ctx, &mut delay, deadline).await? {
                    return Err(timed_out(&what, last_error));
                }
            }
            Err(e) => return Err(e),
        }
    };
    let mut look_first = false;
    loop {
        if look_first {
            match find_created(client, project, stage, freight, key).await {
                Ok(found) => {
                    if let Some(p) = newly_created(found, &before) {
                        return Ok(Created::Found(p));
                    }
                }
                Err(e) if e.is_ambiguous_write() || e.is_transient_while_starting() => {
                    last_error = Some(e);
                    if !pause(ctx, &mut delay, deadline).await? {
                        return Err(timed_out(&what, last_error));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        let attempt_deadline = deadline.min(tokio::time::Instant::now() + CREATE_REQUEST_DEADLINE);
        let outcome = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => {
                return found_after_interrupt(client, project, stage, freight, key, &before).await;
            }
            outcome = client.create(Some(project), &body) => outcome,
            _ = tokio::time::sleep_until(attempt_deadline) => Err(KargoError::Timeout {
                what: what.clone(),
                last_seen: "no answer to the create request".to_string(),
            }),
        };
        let err = match outcome {
            Ok(p) => return Ok(Created::New(p)),
            Err(e) => e,
        };
        if err.is_transient_while_starting()
            && !matches!(err, KargoError::ServiceUnavailable { .. })
        {
            // Refused before anything was stored (Kargo or its webhooks not up yet).
            if tokio::time::Instant::now() >= api_deadline {
                return Err(err);
            }
            look_first = false;
        } else if err.is_ambiguous_write() {
            look_first = true;
        } else {
            return Err(err);
        }
        tracing::info!(error = %err, key = %key, "the promotion create got no clear answer; looking before trying again");
        last_error = Some(err);
        if !pause(ctx, &mut delay, deadline).await? {
            // One last look: the lost answer may have been a success.
            if let Ok(found) = find_created(client, project, stage, freight, key).await
                && let Some(p) = newly_created(found, &before)
            {
                return Ok(Created::Found(p));
            }
            return Err(timed_out(&what, last_error));
        }
    }
}

/// Waits before the next attempt; `false` when `deadline` has passed, `Cancelled` on Ctrl-C.
async fn pause(
    ctx: &Context,
    delay: &mut Duration,
    deadline: tokio::time::Instant,
) -> Result<bool, KargoError> {
    let now = tokio::time::Instant::now();
    if now >= deadline {
        return Ok(false);
    }
    let wait = (*delay).min(deadline - now);
    tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => return Err(KargoError::Cancelled),
        _ = tokio::time::sleep(wait) => {}
    }
    *delay = (*delay * 2).min(MAX_CREATE_RETRY);
    Ok(tokio::time::Instant::now() < deadline)
}

fn timed_out(what: &str, last: Option<KargoError>) -> KargoError {
    KargoError::Timeout {
        what: what.to_string(),
        last_seen: last.map_or_else(|| "no answer".to_string(), |e| e.to_string()),
    }
}

/// Ctrl-C while the create was in flight: the request may have been carried out. Looks (for a
/// bounded time, past the cancellation) so that a Promotion that exists is recorded.
async fn found_after_interrupt(
    client: &KargoClient,
    project: &str,
    stage: &str,
    freight: &str,
    key: &str,
    before: &[String],
) -> Result<Created, KargoError> {
    let look = find_created(client, project, stage, freight, key);
    match tokio::time::timeout(INTERRUPTED_LOOKUP_DEADLINE, look).await {
        Ok(Ok(found)) => match newly_created(found, before) {
            Some(p) => Ok(Created::FoundAfterInterrupt(p)),
            None => Err(KargoError::Cancelled),
        },
        Ok(Err(e)) => Err(KargoError::Other(format!(
            "the apply was interrupted while the promotion was being created, and whether Kargo \
             created it could not be checked ({}); the next apply looks for it (annotation \
             {IDEMPOTENCY_ANNOTATION}={key:?}) before creating it again",
            explain(&e)
        ))),
        Err(_) => Err(KargoError::Other(format!(
            "the apply was interrupted while the promotion was being created, and the cluster did \
             not answer whether Kargo created it; the next apply looks for it (annotation \
             {IDEMPOTENCY_ANNOTATION}={key:?}) before creating it again"
        ))),
    }
}

fn split_id(id: &str) -> Option<(&str, &str)> {
    let (project, name) = id.split_once('/')?;
    (!project.is_empty() && !name.is_empty() && !name.contains('/')).then_some((project, name))
}

#[async_trait]
impl Resource for PromotionResource {
    fn type_name(&self) -> &'static str {
        "kargo_promotion"
    }

    fn schema(&self) -> Schema {
        self.schema.clone()
    }

    fn upgrade_state(&self, version: i64, state: &mut serde_json::Value) -> Diagnostics {
        // A state written before `resume_auto_promotion_on_destroy` and `preview` existed had
        // their defaults.
        if let Some(attrs) = state.as_object_mut() {
            for (name, default) in [(RESUME_ON_DESTROY, json!(false)), ("preview", json!(true))] {
                if attrs.get(name).is_none_or(|v| v.is_null()) {
                    attrs.insert(name.to_string(), default);
                }
            }
        }
        common::upgrade_state(&self.schema, version, state)
    }

    async fn plan(&self, _ctx: &Context, req: PlanRequest) -> PlanResponse {
        let base = plan_from_schema(&self.schema, &req);
        if req.config.is_null() {
            return base;
        }
        let lookup = self.look_up(&req.config).await;
        // What the preview needs, taken before the plan consumes the lookup.
        let preview_input = match &lookup {
            Lookup::Resolved(r) => Ok((r.stage.clone(), r.target.clone())),
            Lookup::Unresolved(Some(w)) => Err(w
                .detail
                .split(" The freight, its artifacts")
                .next()
                .unwrap_or_default()
                .to_string()),
            Lookup::Unresolved(None) => Err("the freight is known only at apply".to_string()),
            Lookup::Failed(_) => Err(String::new()),
        };
        let prior_run = match &lookup {
            Lookup::Resolved(r)
                if !req.prior_state.is_null()
                    && req.prior_state.get("freight_name").as_str() == Some(r.target.name())
                    && !r.stage.holds(r.target.name()) =>
            {
                self.prior_run(&req.prior_state).await
            }
            _ => PriorRun::NotNeeded,
        };
        let target = match &lookup {
            Lookup::Resolved(r) => Some((r.target.name().to_string(), r.stage.clone())),
            _ => None,
        };
        let (mut planned_state, requires_replace, mut diagnostics) = decide(
            &self.schema.block,
            &req.config,
            &req.prior_state,
            &base.planned_state,
            lookup,
            prior_run,
        );
        // The destroy half of a replacement gets this plan's private data: it tells delete not
        // to release an auto-promotion hold the new promotion decides about.
        let planned_private = if requires_replace.is_empty() {
            req.prior_private
        } else {
            REPLACING.to_vec()
        };
        // A replacement is planned twice, its create half again with a null prior state (and
        // this plan's private data): the promotion it creates is claimed then.
        if let Some((freight, stage)) = target
            && !planned_state.is_null()
            && requires_replace.is_empty()
        {
            let key = idempotency_key(&req.config, stage.name(), &freight);
            if !self.data.claim_promotion_key(&key) {
                diagnostics.push(declared_twice(
                    &key,
                    &freight,
                    stage.name(),
                    choice_path(&req.config),
                ));
            } else if req.prior_state.is_null() && !diagnostics.has_errors() {
                self.adopt_at_plan(&mut planned_state, &freight, &stage, &key, &mut diagnostics)
                    .await;
            }
        }
        if planned_state.get("promotion_name").is_unknown() && !diagnostics.has_errors() {
            let (changes, result) = self.preview(&req.config, preview_input).await;
            if let Some(d) = preview_warning(&result) {
                diagnostics.push(d);
            }
            let result = if changes.is_unknown() {
                Value::Unknown
            } else {
                result
            };
            planned_state.set("manifest_changes", changes);
            planned_state.set("preview_result", result);
        }
        PlanResponse {
            planned_state,
            requires_replace,
            planned_private,
            diagnostics,
        }
    }

    async fn create(&self, ctx: &Context, planned: Value, config: Value) -> ApplyResult {
        let project = planned.str_or_empty("project").to_string();
        let stage = planned.str_or_empty("stage").to_string();
        let client = match common::write_client(&self.data, ctx).await {
            Ok(c) => c,
            Err(e) => return fail(common::diagnostics("connect to the cluster", &e, &no_field)),
        };
        let mut state = planned.clone();
        let needs_resolution = RESOLVED
            .iter()
            .chain(&[FREIGHT_ALIAS])
            .any(|a| planned.get(a).is_unknown());
        if needs_resolution {
            match self.resolve_for_apply(&client, &planned, &config).await {
                Ok(r) => fill_resolved(&mut state, &config, &r, true),
                Err(d) => return fail(d.into()),
            }
        }
        if state.get("manifest_changes").is_unknown() || state.get("preview_result").is_unknown() {
            // Not previewed by any plan (the freight was resolved only now).
            let outcome = crate::steps::preview::Outcome::unavailable(
                "the freight was resolved only at apply, after the plan",
            );
            let (changes, result) = super::preview::values(&outcome);
            state.set("manifest_changes", changes);
            state.set("preview_result", result);
        }
        let freight = state.str_or_empty("freight_name").to_string();
        let key = idempotency_key(&config, &stage, &freight);
        let limit = timeout(&planned, "create", CREATE_TIMEOUT);
        let deadline = tokio::time::Instant::now() + limit;
        let adopted = planned.get("promotion_name").as_str();
        let created = match create_once(
            &client, ctx, &project, &stage, &freight, &key, adopted, deadline,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => return fail(create_error(&e, &project, &stage, &config).into()),
        };
        let mut diags = Diagnostics::default();
        let (created, interrupted) = match created {
            Created::New(p) => (p, false),
            Created::Found(p) => {
                tracing::info!(promotion = %p.name(), key = %key, "adopted the promotion an earlier attempt created");
                (p, false)
            }
            Created::FoundAfterInterrupt(p) => (p, true),
        };
        set_run(&mut state, &project, &created);
        common::null_unknowns(&mut state);
        let name = state.str_or_empty("promotion_name").to_string();
        tracing::info!(promotion = %name, stage = %stage, freight = %freight, "promotion created");
        if interrupted {
            diags.push(Diagnostic::warning(
                "Promotion still running",
                format!(
                    "The apply was interrupted while Kargo created promotion {name:?}; it is \
                     recorded in the state, keeps running in Kargo, and the next plan reads where \
                     it got to. It is not started again."
                ),
            ));
            return ApplyResult {
                new_state: state,
                private: Vec::new(),
                diagnostics: diags,
            };
        }
        if planned.get("wait").as_bool() == Some(false) {
            return ApplyResult {
                new_state: state,
                private: Vec::new(),
                diagnostics: diags,
            };
        }
        let what = format!("promotion {name:?} into stage {stage:?} to finish");
        let mut last = created.clone();
        let outcome = client
            .watch_until(
                Some(&project),
                &name,
                &what,
                deadline.saturating_duration_since(tokio::time::Instant::now()),
                &ctx.cancel,
                |object: Option<&Promotion>| match object {
                    None => WatchStep::Fail(KargoError::Other(format!(
                        "promotion {name:?} was deleted while it ran (was the stage deleted?)"
                    ))),
                    Some(p) => {
                        last = p.clone();
                        if p.is_terminal() {
                            WatchStep::Done(p.clone())
                        } else {
                            WatchStep::Continue
                        }
                    }
                },
            )
            .await;
        let still_running = |why: &str| {
            Diagnostic::warning(
                "Promotion still running",
                format!(
                    "{why} Promotion {name:?} keeps running in Kargo (it was {}); it is \
                     recorded in the state, and the next plan reads where it got to. It is \
                     not started again.",
                    last.phase().unwrap_or("Pending")
                ),
            )
        };
        match outcome {
            Ok(done) => {
                set_run(&mut state, &project, &done);
                if done.phase() != Some("Succeeded") {
                    diags.push(Diagnostic::error(
                        "Promotion failed",
                        format!(
                            "{}. The resource is marked tainted, so the next apply promotes \
                             again.",
                            failure_text(&done, &stage)
                        ),
                    ));
                }
            }
            Err(KargoError::Timeout { .. }) => {
                set_run(&mut state, &project, &last);
                diags.push(still_running(&format!(
                    "The wait ended after {} (`timeouts.create`).",
                    format_go_duration(limit)
                )));
            }
            Err(KargoError::Cancelled) => {
                set_run(&mut state, &project, &last);
                diags.push(still_running("The wait was interrupted."));
            }
            Err(e) => {
                set_run(&mut state, &project, &last);
                diags.push(still_running(&format!("Waiting failed: {}.", explain(&e))));
            }
        }
        ApplyResult {
            new_state: state,
            private: Vec::new(),
            diagnostics: diags,
        }
    }

    async fn update(
        &self,
        _ctx: &Context,
        prior: Value,
        planned: Value,
        _config: Value,
        _private: Vec<u8>,
    ) -> ApplyResult {
        // Only `wait`, `timeouts` and the destroy settings change in place, and they only matter
        // to this provider: nothing to send.
        let mut state = planned;
        common::fill_unknown_from(&mut state, &prior);
        common::null_unknowns(&mut state);
        ApplyResult {
            new_state: state,
            private: Vec::new(),
            diagnostics: Diagnostics::default(),
        }
    }

    async fn delete(&self, ctx: &Context, prior: Value, private: Vec<u8>) -> Diagnostics {
        let diags = self.abort(ctx, &prior).await;
        if diags.has_errors()
            || prior.get(RESUME_ON_DESTROY).as_bool() != Some(true)
            || private == REPLACING
        {
            return diags;
        }
        self.resume_auto_promotion(ctx, &prior).await
    }

    async fn read(&self, _ctx: &Context, state: Value, private: Vec<u8>) -> ReadResult {
        let importing = private == IMPORTING;
        let project = state.str_or_empty("project").to_string();
        let name = state.str_or_empty("promotion_name").to_string();
        let trouble = |state: Value, private: Vec<u8>, e: &KargoError, what: &str| {
            common::refresh_failed("Promotion", what, e, state, private, importing, &no_field)
        };
        let client = match self.data.client() {
            Ok(c) => c,
            Err(e) => return trouble(state, private, &e, &format!("promotion {name:?}")),
        };
        let promotion = match client.get::<Promotion>(Some(&project), &name).await {
            // One on its way out is gone, as if garbage-collected.
            Ok(p) => p.filter(|p| !p.is_terminating()),
            Err(e) => return trouble(state, private, &e, &format!("promotion {name:?}")),
        };
        if importing && promotion.is_none() {
            return ReadResult {
                new_state: Value::Null,
                private: Vec::new(),
                diagnostics: Diagnostic::error(
                    "Cannot import promotion",
                    format!("Project {project:?} has no promotion named {name:?}."),
                )
                .into(),
            };
        }
        // An import knows only the promotion; otherwise the state says which stage it is.
        let recorded_stage = state.get("stage").as_str().filter(|_| !importing);
        let promoted_stage = promotion.as_ref().and_then(|p| p.spec.stage.as_deref());
        let stage_name = recorded_stage
            .or(promoted_stage)
            .unwrap_or_default()
            .to_string();
        // The stage is not this resource's object: it is read once for all its promotions.
        let stage = match client
            .get_shared::<Stage>(Some(&project), &stage_name)
            .await
        {
            Ok(Some(s)) if !s.is_terminating() => s,
            // The stage (or the whole project) is gone or on its way out, and its promotions
            // with it.
            Ok(_) if !importing => {
                return ReadResult {
                    new_state: Value::Null,
                    private: Vec::new(),
                    diagnostics: Diagnostics::default(),
                };
            }
            Ok(_) => {
                return ReadResult {
                    new_state: Value::Null,
                    private: Vec::new(),
                    diagnostics: Diagnostic::error(
                        "Cannot import promotion",
                        format!(
                            "Promotion {name:?} belongs to stage {stage_name:?}, which no longer \
                             exists (or is being deleted)."
                        ),
                    )
                    .into(),
                };
            }
            Err(e) => return trouble(state, private, &e, &format!("stage {stage_name:?}")),
        };
        let mut new_state = state.clone();
        if importing {
            new_state = import_state(
                &client,
                &self.schema.block,
                &project,
                &stage_name,
                promotion.as_ref(),
            )
            .await;
        }
        match &promotion {
            Some(p) => set_run(&mut new_state, &project, p),
            None => new_state.set(
                "message",
                Value::string(format!(
                    "Promotion {name:?} no longer exists: Kargo garbage-collects old promotions. \
                     The stage's freight tells whether it is still in place."
                )),
            ),
        }
        let freight_name = new_state.str_or_empty("freight_name");
        let origin = promotion
            .as_ref()
            .and_then(|p| p.status.freight.as_ref())
            .map(|f| f.origin.clone())
            .or_else(|| {
                stage
                    .current_freight()
                    .into_iter()
                    .find(|f| f.name() == freight_name)
                    .map(|f| f.origin)
            })
            .or_else(|| {
                new_state
                    .get("stage_freight")
                    .get("warehouse")
                    .as_str()
                    .map(Origin::warehouse)
            });
        let prior_stage_freight = state.get("stage_freight").clone();
        let stage_freight =
            stage_freight_value(&client, &stage, origin.as_ref(), &prior_stage_freight).await;
        new_state.set("stage_freight", stage_freight);
        ReadResult {
            new_state,
            private: Vec::new(),
            diagnostics: Diagnostics::default(),
        }
    }

    async fn import(&self, _ctx: &Context, id: &str) -> ImportResult {
        let Some((project, name)) = split_id(id) else {
            return ImportResult {
                diagnostics: Diagnostic::error(
                    "Invalid import ID",
                    format!(
                        "Import a promotion as `<project>/<promotion name>`, e.g. \
                         `shop/dev.01j2example.abc1234`; {id:?} is not of that form."
                    ),
                )
                .into(),
                ..Default::default()
            };
        };
        let mut state = self.schema.block.shape().empty_value();
        state.set("project", Value::string(project));
        state.set("promotion_name", Value::string(name));
        state.set("id", Value::string(id));
        ImportResult {
            state,
            private: IMPORTING.to_vec(),
            diagnostics: Diagnostics::default(),
        }
    }
}

/// Everything an imported promotion's state holds, from the Promotion and its Freight, so
/// that a configuration naming that freight (`freight = "<name>"`) plans no changes.
async fn import_state(
    client: &KargoClient,
    block: &Block,
    project: &str,
    stage: &str,
    promotion: Option<&Promotion>,
) -> Value {
    let mut state = block.shape().empty_value();
    let freight_name = promotion
        .and_then(|p| p.spec.freight.as_deref())
        .unwrap_or_default()
        .to_string();
    // The Freight may have been garbage-collected; the Promotion keeps a copy of it.
    let freight = match client.get::<Freight>(Some(project), &freight_name).await {
        Ok(Some(f)) => Some(f),
        _ => None,
    }
    .or_else(|| {
        promotion
            .and_then(|p| p.status.freight.as_ref())
            .map(Freight::from_reference)
    });
    state.set("project", Value::string(project));
    state.set("stage", Value::string(stage));
    state.set(FREIGHT, Value::string(&freight_name));
    state.set("freight_name", Value::string(&freight_name));
    state.set("wait", Value::Bool(true));
    state.set("abort_on_destroy", Value::Bool(true));
    state.set(RESUME_ON_DESTROY, Value::Bool(false));
    state.set("changes", Value::List(Vec::new()));
    match &freight {
        Some(f) => {
            state.set(FREIGHT_ALIAS, f.alias().map_or(Value::Null, Value::string));
            state.set("artifacts", artifacts_value(f));
        }
        None => state.set(
            "artifacts",
            artifacts_value(&Freight {
                metadata: ObjectMeta {
                    name: Some(freight_name.clone()),
                    ..ObjectMeta::default()
                },
                ..Freight::default()
            }),
        ),
    }
    state
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use serde_json::{Value as Json, json};

    use super::*;
    use crate::kargo::PromotionReference;
    use crate::kargo::error::Cause;
    use crate::kargo::types::test_support;
    use crate::plugin::Severity;
    use crate::plugin::validate::validate_config;

    fn block() -> Block {
        PromotionResource::schema_block()
    }

    fn config(j: Json) -> Value {
        Value::from_json(&j, &block().implied_type())
    }

    fn base(config: &Value, prior: &Value) -> Value {
        let req = PlanRequest {
            prior_state: prior.clone(),
            proposed_new_state: config.clone(),
            config: config.clone(),
            prior_private: Vec::new(),
        };
        plan_from_schema(&Schema::new(0, block()), &req).planned_state
    }

    fn now() -> Timestamp {
        "2025-06-01T12:00:00Z".parse().unwrap()
    }

    fn freight(name: &str, tag: &str, verified_in_dev: bool) -> Freight {
        let mut status = json!({});
        if verified_in_dev {
            status = json!({"verifiedIn": {"dev": {}}});
        }
        test_support::freight(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "alias": format!("alias-{name}"),
            "origin": {"kind": "Warehouse", "name": "app"},
            "images": [{"repoURL": "ghcr.io/acme/app", "tag": tag}],
            "status": status,
        }))
    }

    /// `staging` takes freight verified in `dev`; it holds `held` when given.
    fn stage(held: Option<&str>) -> Stage {
        let mut status = json!({});
        if let Some(h) = held {
            status = json!({"freightHistory": [{"items": {"Warehouse/app": {
                "name": h, "origin": {"kind": "Warehouse", "name": "app"},
                "images": [{"repoURL": "ghcr.io/acme/app", "tag": "1.0.0"}]}}}]});
        }
        test_support::stage(json!({
            "metadata": {"name": "staging", "namespace": "shop"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"stages": ["dev"]}}],
                     "promotionTemplate": {"spec": {"steps": [{"uses": "git-clone"}]}}},
            "status": status,
        }))
    }

    fn resolved(target: Freight, held: Option<&str>) -> Lookup {
        let stage = stage(held);
        let freights = [freight("f1", "1.0.0", true), freight("f2", "1.1.0", true)];
        let current = resolve::held_from(&stage, &target.origin, &freights);
        Lookup::Resolved(Box::new(Resolution {
            stage,
            target,
            current,
            now: now(),
            auto_promotion: None,
        }))
    }

    fn cfg() -> Value {
        config(
            json!({"project": "shop", "stage": "staging", "freight_selector": {
            "warehouse": "app", "image": {"repo_url": "ghcr.io/acme/app"}}}),
        )
    }

    /// The state after promoting f2 over f1.
    fn prior() -> Value {
        let c = cfg();
        let (mut planned, _, diags) =
            plan_new(&c, resolved(freight("f2", "1.1.0", true), Some("f1")));
        assert!(diags.is_empty(), "{diags:?}");
        planned.set("id", Value::string("shop/staging.01.f2"));
        planned.set("promotion_name", Value::string("staging.01.f2"));
        planned.set("phase", Value::string("Succeeded"));
        common::null_unknowns(&mut planned);
        planned
    }

    type Planned = (Value, Vec<AttributePath>, Diagnostics);

    /// The plan of a new promotion configured as `config`.
    fn plan_new(config: &Value, lookup: Lookup) -> Planned {
        plan_over(&Value::Null, config, lookup, PriorRun::NotNeeded)
    }

    /// The plan of `config` over the state `prior`.
    fn plan_over(prior: &Value, config: &Value, lookup: Lookup, run: PriorRun) -> Planned {
        decide(&block(), config, prior, &base(config, prior), lookup, run)
    }

    fn paths(p: &[AttributePath]) -> Vec<String> {
        p.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_new_promotion_shows_the_freight_the_stage_and_the_changes() {
        let c = cfg();
        let (planned, replace, diags) =
            plan_new(&c, resolved(freight("f2", "1.1.0", true), Some("f1")));
        assert!(diags.is_empty() && replace.is_empty());
        assert_eq!(planned.get("freight_name"), &Value::string("f2"));
        assert_eq!(planned.get("freight_alias"), &Value::string("alias-f2"));
        assert_eq!(
            planned.get("stage_freight").get("name"),
            &Value::string("f1")
        );
        assert_eq!(
            planned.get("stage_freight").get("alias"),
            &Value::string("alias-f1"),
            "aliases come from the freight list"
        );
        let change = &planned.get("changes").elements()[0];
        assert_eq!(
            (change.get("from"), change.get("to")),
            (&Value::string("1.0.0"), &Value::string("1.1.0"))
        );
        assert_eq!(
            planned.get("summary"),
            &Value::string(
                "staging: freight alias-f1 (ghcr.io/acme/app 1.0.0) → alias-f2 (ghcr.io/acme/app 1.1.0)"
            )
        );
        assert!(planned.get("promotion_name").is_unknown());
        assert_eq!(planned.get("wait"), &Value::Bool(true), "defaults planned");
        assert_eq!(planned.get("abort_on_destroy"), &Value::Bool(true));
    }

    /// `target` for an auto-promoted stage whose candidate is `candidate`, with the stage
    /// holding `held` and, with `hold_by`, a hold that promotion placed.
    fn auto_promoted(
        target: Freight,
        candidate: Option<Freight>,
        held: &str,
        hold_by: Option<&str>,
    ) -> Lookup {
        let mut stage = stage(Some(held));
        stage.status.auto_promotion_enabled = Some(true);
        if let Some(p) = hold_by {
            stage.status.auto_promotion_holds.insert(
                "Warehouse/app".into(),
                crate::kargo::AutoPromotionHold {
                    freight_name: held.into(),
                    origin: Origin::warehouse("app"),
                    promotion_name: Some(p.into()),
                    ..Default::default()
                },
            );
        }
        let freights = [freight("f1", "1.0.0", true), freight("f2", "1.1.0", true)];
        let current = resolve::held_from(&stage, &target.origin, &freights);
        Lookup::Resolved(Box::new(Resolution {
            stage,
            target,
            current,
            now: now(),
            auto_promotion: Some(candidate),
        }))
    }

    #[test]
    fn a_rollback_of_an_auto_promoted_stage_warns_of_the_hold_on_the_choosing_attribute() {
        let c = cfg();
        let (_, _, diags) = plan_new(
            &c,
            auto_promoted(
                freight("f1", "1.0.0", true),
                Some(freight("f2", "1.1.0", true)),
                "f2",
                None,
            ),
        );
        assert_eq!(diags.0.len(), 1);
        let d = &diags.0[0];
        assert_eq!(d.severity, Severity::Warning);
        assert_eq!(d.summary, "Promotion will hold auto-promotion");
        assert!(
            d.detail.contains("freight \"f1\" (alias \"alias-f1\") is not its auto-promotion candidate from warehouse \"app\" (the candidate is freight \"f2\" (alias \"alias-f2\"))")
                && d.detail.contains("auto-promotion hold on Warehouse/app")
                && d.detail.contains("resume_auto_promotion_on_destroy = true"),
            "{}",
            d.detail
        );
        assert_eq!(
            paths(&[d.attribute.clone().unwrap()]),
            vec!["freight_selector"]
        );
        // No candidate at all still holds.
        let (_, _, diags) = plan_new(
            &c,
            auto_promoted(freight("f1", "1.0.0", true), None, "f2", None),
        );
        assert!(
            diags.0[0]
                .detail
                .contains("there is no candidate right now")
        );
    }

    #[test]
    fn promoting_the_candidate_warns_only_when_it_releases_a_hold() {
        let c = cfg();
        let target = || freight("f2", "1.1.0", true);
        let (_, _, diags) = plan_new(&c, auto_promoted(target(), Some(target()), "f1", None));
        assert!(diags.is_empty(), "nothing held, nothing to say");
        let (_, _, diags) = plan_new(
            &c,
            auto_promoted(target(), Some(target()), "f1", Some("staging.01abc.f1")),
        );
        assert_eq!(diags.0[0].summary, "Promotion will resume auto-promotion");
        assert!(
            diags.0[0]
                .detail
                .contains("releases the auto-promotion hold on Warehouse/app placed by promotion \"staging.01abc.f1\""),
            "{}",
            diags.0[0].detail
        );
        // A stage that is not auto-promoted says nothing either way.
        let (_, _, diags) = plan_new(&c, resolved(freight("f1", "1.0.0", true), Some("f2")));
        assert!(diags.is_empty());
    }

    #[test]
    fn promoting_what_the_stage_holds_says_so() {
        let c = cfg();
        let (planned, _, diags) = plan_new(&c, resolved(freight("f2", "1.1.0", true), Some("f2")));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(
            planned.get("summary"),
            &Value::string("staging: already at alias-f2")
        );
    }

    #[test]
    fn unavailable_freight_fails_the_plan_on_the_choosing_attribute() {
        let c = cfg();
        let (_, _, diags) = plan_new(&c, resolved(freight("f3", "1.2.0", false), Some("f1")));
        assert!(diags.has_errors());
        let d = &diags.0[0];
        assert_eq!(
            d.attribute.as_ref().unwrap().to_string(),
            "freight_selector"
        );
        assert!(
            d.detail.contains("not been verified in stage \"dev\""),
            "{}",
            d.detail
        );
    }

    #[test]
    fn a_stage_that_holds_the_freight_is_in_sync_even_without_the_promotion() {
        let prior = prior();
        let mut refreshed = prior.clone();
        refreshed.set(
            "stage_freight",
            summary_value(&freight("f2", "1.1.0", true)),
        );
        refreshed.set("message", Value::string("gone"));
        let c = cfg();
        let (planned, replace, diags) = plan_over(
            &refreshed,
            &c,
            resolved(freight("f2", "1.1.0", true), Some("f2")),
            PriorRun::NotNeeded,
        );
        assert!(diags.is_empty() && replace.is_empty(), "{replace:?}");
        assert_eq!(planned, refreshed, "nothing changes");
    }

    #[test]
    fn other_freight_or_a_stage_that_moved_away_replaces() {
        let prior = prior();
        let c = cfg();
        let (planned, replace, _) = plan_over(
            &prior,
            &c,
            resolved(freight("f3", "1.2.0", true), Some("f2")),
            PriorRun::NotNeeded,
        );
        assert_eq!(paths(&replace), ["promotion_name", "freight_name"]);
        assert_eq!(planned.get("freight_name"), &Value::string("f3"));
        assert_eq!(
            planned.get("summary"),
            &Value::string(
                "staging: freight alias-f2 (ghcr.io/acme/app 1.0.0) → alias-f3 (ghcr.io/acme/app 1.2.0)"
            ),
            "the new promotion's own summary"
        );
        assert_eq!(
            planned.get("stage_freight").get("name"),
            &Value::string("f2")
        );
        // Moved away (promoted elsewhere) after this promotion finished.
        let (planned, replace, diags) = plan_over(
            &prior,
            &c,
            resolved(freight("f2", "1.1.0", true), Some("f1")),
            PriorRun::Gone,
        );
        assert!(diags.is_empty());
        assert_eq!(paths(&replace), ["promotion_name"]);
        assert!(planned.get("promotion_name").is_unknown());
        assert_eq!(
            planned.get("stage_freight").get("name"),
            &Value::string("f1")
        );
    }

    #[test]
    fn a_success_the_stage_has_not_recorded_yet_is_not_drift() {
        let mut prior = prior();
        let ours = "staging.01jzz0000000000000000000aa.f2abcde";
        prior.set("promotion_name", Value::string(ours));
        let c = cfg();
        let with_last = |last: Option<&str>| {
            let Lookup::Resolved(mut r) = resolved(freight("f2", "1.1.0", true), Some("f1")) else {
                unreachable!("resolved() resolves")
            };
            r.stage.status.last_promotion = last.map(|n| PromotionReference {
                name: n.to_string(),
                ..Default::default()
            });
            Lookup::Resolved(r)
        };
        let plan = |lookup, run| plan_over(&prior, &c, lookup, run);
        let succeeded = || PriorRun::Finished("Succeeded".into());
        let older = "staging.01jyy0000000000000000000aa.f1abcde";
        let newer = "staging.01k000000000000000000000aa.f1abcde";
        let (_, replace, _) = plan(with_last(Some(older)), succeeded());
        assert!(replace.is_empty(), "the stage has not caught up yet");
        let (_, replace, _) = plan(with_last(None), succeeded());
        assert!(replace.is_empty());
        let (_, replace, _) = plan(with_last(Some(ours)), succeeded());
        assert_eq!(
            paths(&replace),
            ["promotion_name"],
            "recorded, then moved away"
        );
        let (_, replace, _) = plan(with_last(Some(newer)), succeeded());
        assert_eq!(paths(&replace), ["promotion_name"], "promoted over since");
        let (_, replace, _) = plan(with_last(Some(older)), PriorRun::Finished("Failed".into()));
        assert_eq!(paths(&replace), ["promotion_name"], "a failure is redone");
        assert_eq!(promotion_ulid("a.b.c"), None);
        assert_eq!(
            promotion_ulid("my.stage.01JZZ0000000000000000000AA.f2abcde").as_deref(),
            Some("01jzz0000000000000000000aa")
        );
    }

    #[test]
    fn another_stage_is_another_promotion() {
        let prior = prior();
        let mut c = cfg();
        c.set("stage", Value::string("qa"));
        let (planned, replace, diags) = plan_over(
            &prior,
            &c,
            resolved(freight("f2", "1.1.0", true), Some("f1")),
            PriorRun::Running("Running".into()),
        );
        assert!(diags.is_empty(), "no word about the old stage's promotion");
        assert_eq!(paths(&replace), ["promotion_name", "stage"]);
        assert!(planned.get("promotion_name").is_unknown());
    }

    #[test]
    fn a_running_promotion_is_left_alone_with_a_warning() {
        let prior = prior();
        let c = cfg();
        let (planned, replace, diags) = plan_over(
            &prior,
            &c,
            resolved(freight("f2", "1.1.0", true), Some("f1")),
            PriorRun::Running("Running".into()),
        );
        assert!(replace.is_empty());
        assert_eq!(planned, prior);
        assert_eq!(diags.0[0].severity, Severity::Warning);
        assert!(
            diags.0[0].detail.contains("still Running"),
            "{}",
            diags.0[0].detail
        );
    }

    #[test]
    fn unresolved_plans_are_known_after_apply_and_keep_what_did_not_change() {
        let c = cfg();
        let warning = not_resolved_warning("The cluster is away.");
        let (planned, _, diags) = plan_new(&c, Lookup::Unresolved(Some(warning)));
        assert_eq!(diags.0[0].severity, Severity::Warning);
        assert!(
            diags.0[0]
                .detail
                .contains("The cluster is away. The freight")
        );
        for a in [
            "freight_name",
            "freight_alias",
            "stage_freight",
            "changes",
            "summary",
            "id",
        ] {
            assert!(planned.get(a).is_unknown(), "{a}");
        }
        let prior = prior();
        let (planned, replace, _) =
            plan_over(&prior, &c, Lookup::Unresolved(None), PriorRun::NotNeeded);
        assert!(replace.is_empty());
        assert_eq!(planned, prior);
        let named = config(json!({"project": "shop", "stage": "staging", "freight": "f9"}));
        let (planned, replace, _) = plan_over(
            &prior,
            &named,
            Lookup::Unresolved(None),
            PriorRun::NotNeeded,
        );
        assert_eq!(planned.get("freight_name"), &Value::string("f9"));
        assert_eq!(paths(&replace), ["promotion_name", "freight_name"]);
    }

    #[test]
    fn wait_and_timeouts_change_in_place() {
        let prior = prior();
        let mut c = cfg();
        c.set("wait", Value::Bool(false));
        let (planned, replace, _) = plan_over(
            &prior,
            &c,
            resolved(freight("f2", "1.1.0", true), Some("f2")),
            PriorRun::NotNeeded,
        );
        assert!(replace.is_empty());
        assert_eq!(planned.get("wait"), &Value::Bool(false));
        assert_eq!(planned.get("promotion_name"), prior.get("promotion_name"));
    }

    #[test]
    fn failed_lookups_fail_the_plan() {
        let c = cfg();
        let d = Diagnostic::error("No freight matches the selector", "none")
            .at(AttributePath::attr("freight_selector"));
        let (_, _, diags) = plan_new(&c, Lookup::Failed(d));
        assert!(diags.has_errors());
    }

    #[test]
    fn failures_name_the_step_and_kargos_message() {
        let p: Promotion = crate::kargo::decode(
            json!({"metadata": {"name": "dev.01.abc"}, "status": {"phase": "Failed",
            "message": "step \"push\": failed: remote rejected",
            "stepExecutionMetadata": [{"alias": "clone", "status": "Succeeded"},
                                      {"alias": "push", "status": "Failed", "message": "x"}]}}),
        )
        .unwrap();
        assert_eq!(
            failure_text(&p, "dev"),
            "Promotion \"dev.01.abc\" into stage \"dev\" ended Failed at step \"push\": step \"push\": failed: remote rejected"
        );
        let aborted: Promotion = crate::kargo::decode(
            json!({"metadata": {"name": "n"}, "status": {"phase": "Aborted"}}),
        )
        .unwrap();
        assert_eq!(
            failure_text(&aborted, "dev"),
            "Promotion \"n\" into stage \"dev\" ended Aborted: Kargo gave no message"
        );
    }

    #[test]
    fn create_errors_land_where_they_belong() {
        let c = cfg();
        let denied = KargoError::NotPermittedToPromote {
            stage: "dev".into(),
            message: "subject \"bob\" is not permitted to create Promotions for Stage \"dev\""
                .into(),
        };
        let d = create_error(&denied, "shop", "dev", &c);
        assert_eq!(d.attribute.unwrap().to_string(), "stage");
        for part in [
            "`promote`",
            "`stages`",
            "`stages/dev`",
            "namespace \"shop\"",
            "kargo-promoter",
        ] {
            assert!(d.detail.contains(part), "{part}: {}", d.detail);
        }
        let refused = KargoError::Invalid {
            what: "Promotion".into(),
            message: "Freight is not available to this Stage".into(),
            causes: vec![Cause {
                field: "spec.freight".into(),
                message: "Freight is not available to this Stage".into(),
                reason: "FieldValueInvalid".into(),
            }],
        };
        let d = create_error(&refused, "shop", "dev", &c);
        assert_eq!(d.attribute.unwrap().to_string(), "freight_selector");
        assert!(d.detail.contains("not available"));
        let other = KargoError::Other("boom".into());
        assert!(
            create_error(&other, "shop", "dev", &c)
                .detail
                .contains("boom")
        );
    }

    fn offline() -> PromotionResource {
        PromotionResource::new(ProviderData::from_client(
            crate::resources::convert::test_support::offline_client(),
        ))
    }

    #[tokio::test]
    async fn an_unreachable_cluster_plans_unknowns_and_keeps_state_on_refresh() {
        let r = offline();
        let c = cfg();
        let req = PlanRequest {
            prior_state: Value::Null,
            proposed_new_state: c.clone(),
            config: c.clone(),
            prior_private: Vec::new(),
        };
        let resp = r.plan(&Context::default(), req).await;
        assert!(!resp.diagnostics.has_errors(), "{:?}", resp.diagnostics);
        let warning = &resp.diagnostics.0[0];
        assert_eq!(warning.severity, Severity::Warning);
        assert!(warning.detail.contains("127.0.0.1:9"), "{}", warning.detail);
        assert!(resp.planned_state.get("freight_name").is_unknown());
        let read = r.read(&Context::default(), prior(), Vec::new()).await;
        assert_eq!(read.new_state, prior());
        assert_eq!(read.diagnostics.0[0].severity, Severity::Warning);
        assert_eq!(read.diagnostics.0[0].summary, "Promotion not refreshed");
        let import = r
            .read(&Context::default(), prior(), IMPORTING.to_vec())
            .await;
        assert!(
            import.diagnostics.has_errors(),
            "an import needs the cluster"
        );
    }

    #[tokio::test]
    async fn imports_need_project_and_name() {
        let r = offline();
        let ok = r.import(&Context::default(), "shop/dev.01.abc").await;
        assert!(ok.diagnostics.is_empty());
        assert_eq!(ok.state.get("promotion_name"), &Value::string("dev.01.abc"));
        assert_eq!(ok.private, IMPORTING);
        let bad = r.import(&Context::default(), "dev.01.abc").await;
        assert_eq!(bad.diagnostics.0[0].summary, "Invalid import ID");
    }

    #[test]
    fn the_idempotency_key_is_the_stage_the_freight_and_how_it_is_chosen() {
        let choose = |extra: Json| {
            let mut j = json!({"project": "shop", "stage": "dev"});
            j.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            idempotency_key(&config(j), "dev", "abc123")
        };
        let by_name = choose(json!({"freight": "abc123"}));
        let (prefix, digest) = by_name.rsplit_once('/').unwrap();
        assert_eq!(prefix, "dev/abc123");
        assert!(
            digest.len() == 12 && digest.chars().all(|c| c.is_ascii_hexdigit()),
            "{digest}"
        );
        // Computed again from the same configuration, and unmoved by what changes in place.
        assert_eq!(choose(json!({"freight": "abc123"})), by_name);
        assert_eq!(
            choose(json!({"freight": "abc123", "wait": false, "timeouts": {"create": "1m"}})),
            by_name
        );
        // Another way of choosing the same freight is another resource's promotion.
        let others = [
            choose(json!({"freight_alias": "tall-fox"})),
            choose(json!({"origin_warehouse": "app"})),
            choose(json!({"freight_selector": {"warehouse": "app", "version_constraint": "^1.0"}})),
            choose(json!({"freight_selector": {"warehouse": "app", "version_constraint": "^1.1"}})),
        ];
        let mut all: Vec<&String> = others.iter().chain([&by_name]).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 5, "{others:?}");
    }

    #[test]
    fn every_promotion_carries_its_idempotency_key() {
        let key = "dev/abc123/0123456789ab";
        let body = serde_json::to_value(promotion_body("dev", "abc123", key)).unwrap();
        assert_eq!(
            body["metadata"],
            json!({
                "generateName": "dev-",
                "annotations": {IDEMPOTENCY_ANNOTATION: key},
                "labels": {IDEMPOTENCY_LABEL: idempotency_label(key)},
            })
        );
        // A label value: at most 63 characters of [a-z0-9].
        assert_eq!(idempotency_label(key).len(), 40);
        assert_ne!(
            idempotency_label(key),
            idempotency_label("dev/abc123/0123456789ac")
        );
        assert_eq!(body["spec"], json!({"stage": "dev", "freight": "abc123"}));
    }

    #[test]
    fn only_a_promotion_that_was_not_there_before_is_this_creates() {
        let named = |n: &str| Promotion {
            metadata: ObjectMeta {
                name: Some(n.into()),
                ..ObjectMeta::default()
            },
            ..Promotion::default()
        };
        let before = vec!["dev.a".to_string()];
        assert!(newly_created(vec![named("dev.a")], &before).is_none());
        assert_eq!(
            newly_created(vec![named("dev.a"), named("dev.b")], &before)
                .unwrap()
                .name(),
            "dev.b"
        );
        assert!(newly_created(Vec::new(), &before).is_none());
    }

    #[test]
    fn import_ids_are_project_slash_name() {
        assert_eq!(split_id("shop/dev.01.abc"), Some(("shop", "dev.01.abc")));
        for bad in ["shop", "/x", "shop/", "a/b/c"] {
            assert_eq!(split_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn exactly_one_freight_choice() {
        let both = config(
            json!({"project": "shop", "stage": "dev", "freight": "f1", "origin_warehouse": "app"}),
        );
        let diags = validate_config(&block(), &both);
        assert!(diags.has_errors());
        let none = config(json!({"project": "shop", "stage": "dev"}));
        assert!(validate_config(&block(), &none).has_errors());
        let one = config(json!({"project": "shop", "stage": "dev", "freight_alias": "tall-fox"}));
        assert!(!validate_config(&block(), &one).has_errors());
    }

    #[test]
    fn schema_describes_every_attribute() {
        let b = block();
        common::assert_described(&b);
        let timeouts = &b.nested_block("timeouts").unwrap().block;
        assert!(
            timeouts.attributes[0]
                .description
                .contains("promotion to finish")
        );
        assert!(b.attribute("freight_alias").unwrap().computed);
        assert!(b.attribute("freight_name").unwrap().requires_replace);
    }
}
