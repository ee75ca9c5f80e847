//! `kargo_freight_approval`: approves a freight for a stage (Kargo's manual approval, kept in
//! the Freight's `status.approvedFor`), so the stage may take it without it passing upstream.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::common::{self, IMPORTING, dns_label, dns_subdomain, explain, fail, no_field, timeout};
use crate::config::ProviderData;
use crate::duration::format_go_duration;
use crate::kargo::{Error as KargoError, Freight, KargoClient, Object as _, Stage, Transport};
use crate::plugin::plan::{plan_from_schema, requires_replace_paths, values_equal};
use crate::plugin::schema::Validator;
use crate::plugin::{
    ApplyResult, Attribute, AttributePath, Block, Context, Diagnostic, Diagnostics, ImportResult,
    NestedBlock, PlanRequest, PlanResponse, ReadResult, Resource, Schema, Value,
};
use crate::resolve::choice::{
    artifacts_attribute, choice_changed, freight_choice, freight_choice_validator,
    set_alias_output, with_attribute,
};
use crate::resolve::values::artifacts_value;
use crate::resolve::{
    self, FREIGHT, FREIGHT_ALIAS, FREIGHT_SELECTOR, FreightChoice, Unresolvable, Way,
    expect_approval,
};

const CREATE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(2 * 60);

/// The ways an approval may choose its freight. Kargo's auto-promotion pick
/// (`origin_warehouse`) only ever names freight the stage can already take, so it has no
/// place here.
const WAYS: [Way; 3] = [Way::Name, Way::Alias, Way::Selector];

/// The `kargo_freight_approval` resource.
pub struct FreightApprovalResource {
    data: ProviderData,
    schema: Schema,
}

impl FreightApprovalResource {
    pub fn new(data: ProviderData) -> Self {
        Self {
            data,
            schema: Schema::new(common::SCHEMA_VERSION, schema_block()),
        }
    }
}

const DESCRIPTION: &str = "\
Approves a freight for a stage: Kargo's manual approval, which makes the freight available to \
the stage even though it has not passed the stage's upstream stages (or the stage does not take \
freight directly from the warehouse).

Approving does not promote: declare a `kargo_promotion` that refers to this approval (`freight = kargo_freight_approval.<name>.freight_name`) or has it in \
`depends_on`. Terraform then plans and applies the approval first, and the promotion's plan counts \
the freight as approved for the stage, so both are applied together.

The freight is chosen by name (`freight`), alias (`freight_alias`) or with `freight_selector`, \
which for an approval considers **all** freight from the warehouse, available to the stage or \
not (approving is how freight becomes available). Unlike `kargo_promotion` there is no \
`origin_warehouse`: Kargo's auto-promotion pick is always freight the stage can already take, so \
it never needs an approval. The choice is resolved at plan time, so the \
plan shows the freight's name, alias and artifacts. Plan and apply check that the stage requests \
freight from the freight's warehouse, as Kargo's API does. When the cluster cannot be reached \
while planning, the plan succeeds with the freight \"known after apply\" and a warning. Choosing \
a different freight, stage or project replaces the approval.

When the freight is already approved for the stage, that approval is adopted. If the approval \
is removed outside Terraform (or the freight deleted), the next plan proposes to approve again \
(or forgets it).

Destroying withdraws the approval when the freight has not been used by the stage (it is not, \
and never was, in the stage). Once the freight has been promoted into the stage the approval \
cannot be undone in any meaningful way, so destroy only removes it from the Terraform state and \
says so in a warning.

Kargo's API server approves with the `promote` permission on the stage. This resource writes the \
approval directly (a merge patch of the Freight's `status.approvedFor`, what `kubectl patch \
--subresource=status` does), which needs RBAC permission to `patch` the `freights/status` \
subresource (API group `kargo.akuity.io`) in the project namespace instead.";

/// An approval's selector counts all freight from the warehouse: `available_only` is
/// accepted only as `false`.
fn refuse_available_only() -> Validator {
    common::refuse_true(
        "must not be `true`: an approval considers all freight",
        "Not applicable to approvals",
        "An approval is how freight that is not yet available to the stage becomes available, \
         so `freight_selector` here always considers all freight from the warehouse. Remove \
         `available_only`.",
    )
}

/// The shared freight choice, with `freight_alias` also reporting the chosen freight's alias
/// and the selector's `available_only` turned into the refusal above.
fn choice_block() -> Block {
    let mut choice = freight_choice(&WAYS, "the freight to approve");
    choice.attributes = std::mem::take(&mut choice.attributes)
        .into_iter()
        .map(|attr| match attr.name.as_str() {
            FREIGHT => attr.description(
                "Choose the freight to approve by its name (ID), e.g. from a `kargo_freight` \
                 data source. Exactly one of `freight`, `freight_alias` and `freight_selector` \
                 must be set.",
            ),
            FREIGHT_ALIAS => attr.computed().description(
                "Choose the freight to approve by its alias (e.g. `tall-fox`), as Kargo's UI and \
                 CLI show it. When the freight is chosen otherwise, this reports its alias.",
            ),
            _ => attr,
        })
        .collect();
    choice.blocks = std::mem::take(&mut choice.blocks)
        .into_iter()
        .map(|b| match b.type_name.as_str() {
            FREIGHT_SELECTOR => selector_without_available_only(b),
            _ => b,
        })
        .collect();
    choice
}

fn selector_without_available_only(selector: NestedBlock) -> NestedBlock {
    let available_only = Attribute::bool("available_only")
        .optional()
        .validate(refuse_available_only())
        .description(
            "Not used by approvals, which always consider all freight from the warehouse; \
             setting it to `true` is an error.",
        );
    with_attribute(selector, available_only).description(
        "Choose the freight to approve by an artifact it carries: the newest freight from \
         `warehouse` whose image, Git commit or chart (exactly one of the `image`, `git` and \
         `chart` blocks) satisfies `version_constraint`, whether or not it is available to the \
         stage yet. Resolved at plan time; when newer matching freight appears, the next plan \
         replaces the approval (withdrawing the old one if it was not used).",
    )
}

fn schema_block() -> Block {
    let mut attrs = vec![
        Attribute::string("id")
            .computed()
            .description("`<project>/<stage>/<freight name>`, the identifier used to import the approval."),
        Attribute::string("project")
            .required()
            .requires_replace()
            .validate(dns_label())
            .description("Name of the Kargo project the stage and the freight belong to. Changing it replaces the approval."),
        Attribute::string("stage")
            .required()
            .requires_replace()
            .validate(dns_subdomain())
            .description("Name of the stage the freight is approved for. It must request freight from the freight's warehouse. Changing it replaces the approval."),
    ];
    let choice = choice_block();
    attrs.extend(choice.attributes);
    attrs.extend([
        Attribute::string("freight_name")
            .computed()
            .requires_replace()
            .description("Name (ID) of the approved freight. When the chosen freight changes, the approval is replaced."),
        artifacts_attribute("artifacts", "The artifacts the approved freight carries."),
        Attribute::string("approved_at")
            .computed()
            .use_state_for_unknown()
            .description("When the freight was approved for the stage (RFC 3339), as Kargo records it."),
    ]);
    let mut block = Block::new(attrs)
        .description(DESCRIPTION)
        .validate(freight_choice_validator(&WAYS));
    block.blocks = choice.blocks;
    block.block(common::timeouts_block(
        "How long creating may take, including waiting for the Kargo API when Kargo is \
         installed by the same apply. Default `5m`.",
        "How long withdrawing the approval may take. Default `2m`.",
    ))
}

/// Where a field Kargo names in a refusal lives in this resource.
fn approval_field(field: &str) -> Option<AttributePath> {
    field
        .starts_with("status.approvedFor")
        .then(|| AttributePath::attr("stage"))
}

/// A refused write as a diagnostic, with what RBAC the raw status patch needs.
fn write_error(action: &str, err: &KargoError) -> Diagnostic {
    let mut d = common::diagnostic(action, err, &approval_field);
    if matches!(err, KargoError::Forbidden { .. }) {
        d.detail.push_str(
            " Approving writes the Freight's status: grant `patch` on `freights/status` (API group \
             kargo.akuity.io) in the project namespace.",
        );
    }
    d
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// The stage must exist and request freight from the freight's warehouse, as Kargo's API
/// insists before it approves.
fn stage_refusal(
    stage_name: &str,
    project: &str,
    stage: Option<&Stage>,
    freight: &Freight,
) -> Option<Diagnostic> {
    let at = AttributePath::attr("stage");
    let Some(stage) = stage else {
        return Some(
            Diagnostic::error(
                "Stage not found",
                format!(
                    "Stage {stage_name:?} does not exist in project {project:?}, so {} cannot be \
                     approved for it. Check `stage`; if the stage is created by this \
                     configuration, refer to it (`stage = kargo_stage.example.name`).",
                    freight.describe()
                ),
            )
            .at(at),
        );
    };
    if stage.request_for(&freight.origin).is_some() {
        return None;
    }
    let requested: Vec<String> = stage
        .requested_freight()
        .iter()
        .map(|r| r.origin().to_string())
        .collect();
    Some(
        Diagnostic::error(
            "Stage does not request this freight",
            format!(
                "Stage {stage_name:?} does not request freight from {}, where {} comes from; it \
                 requests freight from {}. Kargo only accepts approvals for freight a stage \
                 requests: approve freight from one of those warehouses, or add a \
                 `requested_freight` block with `origin {{ name = {:?} }}` to the stage.",
                freight.origin,
                freight.describe(),
                if requested.is_empty() {
                    "no warehouse".to_string()
                } else {
                    requested.join(", ")
                },
                freight.origin.name,
            ),
        )
        .at(at),
    )
}

/// Why the approval of `freight` for `stage` has been used (so withdrawing it would undo
/// nothing), or `None` when the stage never took the freight.
fn used_by_stage(freight: &Freight, stage_name: &str, stage: Option<&Stage>) -> Option<String> {
    if freight.is_currently_in(stage_name) {
        return Some(format!("it is the freight stage {stage_name:?} holds now"));
    }
    if freight.is_verified_in(stage_name) {
        return Some(format!("it has been verified in stage {stage_name:?}"));
    }
    let stage = stage?;
    if stage.has_held(freight.name()) {
        return Some(format!("stage {stage_name:?} has held it"));
    }
    let promoting = stage
        .status
        .current_promotion
        .as_ref()
        .and_then(|p| p.freight_name())
        == Some(freight.name());
    promoting.then(|| format!("a promotion of it into stage {stage_name:?} is running"))
}

/// What planning decided about the freight.
enum Target {
    /// The prior state's freight still stands.
    Keep,
    Resolved(Box<Freight>),
    /// Only known at apply.
    Unknown,
}

impl FreightApprovalResource {
    fn client(&self) -> Result<std::sync::Arc<KargoClient>, Diagnostics> {
        self.data
            .client()
            .map_err(|e| common::diagnostics("connect to the cluster", &e, &no_field))
    }

    /// Resolves the configured choice against the cluster while planning. Connection
    /// problems are a warning (the freight is then known after apply); a choice that
    /// designates nothing, or a stage that refuses the freight, is an error.
    async fn resolve_at_plan(
        &self,
        project: &str,
        stage: &str,
        choice: &FreightChoice,
        diags: &mut Diagnostics,
    ) -> Target {
        let unreachable = |diags: &mut Diagnostics, e: &KargoError| {
            diags.warning(
                "Freight to approve not resolved",
                format!(
                    "The cluster could not be asked which freight {} designates ({}), so it is \
                     shown as known after apply and resolved then.",
                    choice.describe(),
                    explain(e)
                ),
            );
            Target::Unknown
        };
        if !self.data.configuration_known() {
            return unreachable(diags, &KargoError::ConfigUnknown);
        }
        let client = match self.data.client() {
            Ok(c) => c,
            Err(e) => return unreachable(diags, &e),
        };
        // An approval ignores availability, so no stage and no clock are involved.
        let freight = match resolve::without_stage(&client, project, choice).await {
            Ok(f) => f,
            Err(Unresolvable::FreightUnlisted(e)) => return unreachable(diags, &e),
            Err(failure) => {
                diags.push(failure.diagnostic(project, stage, "approve", choice.path()));
                return Target::Unknown;
            }
        };
        match client.get_shared::<Stage>(Some(project), stage).await {
            Ok(Some(live)) => match stage_refusal(stage, project, Some(&live), &freight) {
                Some(d) => diags.push(d),
                None => expect_approval(&client, project, freight.name(), stage),
            },
            // Possibly created by this same apply; apply checks again.
            Ok(None) => diags.push(
                Diagnostic::warning(
                    "Stage not found yet",
                    format!(
                        "Stage {stage:?} does not exist in project {project:?} yet. The approval \
                         fails at apply unless this configuration creates the stage first."
                    ),
                )
                .at(AttributePath::attr("stage")),
            ),
            Err(e) => return unreachable(diags, &e),
        }
        Target::Resolved(Box::new(freight))
    }

    /// Finds the freight at apply: by the name planned, or by resolving the choice when the
    /// plan could not.
    async fn freight_for_apply(
        &self,
        client: &KargoClient,
        project: &str,
        planned: &Value,
        config: &Value,
    ) -> Result<Freight, Diagnostics> {
        let Some(name) = text(planned.get("freight_name")) else {
            let Some(choice) = FreightChoice::from_config(config) else {
                return Err(Diagnostic::error(
                    "Freight to approve unknown",
                    "Set exactly one of `freight`, `freight_alias` and `freight_selector` to a \
                     value known at apply.",
                )
                .into());
            };
            let stage = planned.str_or_empty("stage");
            return resolve::without_stage(client, project, &choice)
                .await
                .map_err(|failure| {
                    failure
                        .diagnostic(project, stage, "approve", choice.path())
                        .into()
                });
        };
        match client.get::<Freight>(Some(project), &name).await {
            Ok(Some(f)) => Ok(f),
            Ok(None) => Err(Diagnostic::error(
                "Freight not found",
                format!(
                    "Freight {name:?} no longer exists in project {project:?} (it may have been \
                     garbage-collected since the plan). Plan again."
                ),
            )
            .into()),
            Err(e) => Err(common::diagnostics("read the freight", &e, &no_field)),
        }
    }

    async fn approve(
        &self,
        client: &KargoClient,
        project: &str,
        stage: &str,
        planned: &Value,
        config: &Value,
    ) -> Result<(Freight, String), Diagnostics> {
        let freight = self
            .freight_for_apply(client, project, planned, config)
            .await?;
        let stage_live = client
            .get::<Stage>(Some(project), stage)
            .await
            .map_err(|e| common::diagnostics("read the stage", &e, &no_field))?;
        if let Some(d) = stage_refusal(stage, project, stage_live.as_ref(), &freight) {
            return Err(d.into());
        }
        // An approval someone already made is adopted as it is.
        if let Some(at) = approved_at(&freight, stage) {
            return Ok((freight, at));
        }
        let now = client
            .server_time()
            .await
            .map_err(|e| common::diagnostics("read the cluster's clock", &e, &no_field))?;
        // Kubernetes timestamps have whole seconds.
        let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
        let stored = client
            .approve_freight(project, freight.name(), stage, now)
            .await
            .map_err(|e| Diagnostics::from(write_error("approve the freight", &e)))?;
        let at = approved_at(&stored, stage).unwrap_or_else(|| now.to_string());
        Ok((freight, at))
    }
}

impl FreightApprovalResource {
    /// Through Kargo's API server an approval cannot be withdrawn: the plan that destroys or
    /// replaces one says so, on the freight it leaves approved.
    fn kept_through_api_server(&self, prior: &Value) -> Diagnostics {
        let through_api_server = self
            .data
            .client()
            .is_ok_and(|c| c.transport() == Transport::KargoApiServer);
        let (Some(freight), Some(stage)) = (
            prior.get("freight_name").as_str(),
            prior.get("stage").as_str(),
        ) else {
            return Diagnostics::default();
        };
        if !through_api_server {
            return Diagnostics::default();
        }
        Diagnostic::warning(
            "Approval will be kept: Kargo's API server cannot withdraw it",
            format!(
                "Freight {freight:?} stays approved for stage {stage:?} when this approval is \
                 destroyed or replaced: Kargo's REST API has no route to withdraw an approval, so \
                 it is only removed from the Terraform state. Connect through the Kubernetes API \
                 to withdraw approvals."
            ),
        )
        .at(AttributePath::attr("freight_name"))
        .into()
    }
}

/// Why a bounded operation did not finish.
enum Interrupted {
    TimedOut,
    Cancelled,
}

/// Runs `work` until it finishes, `budget` passes or Terraform is interrupted.
async fn bounded<T>(
    budget: Duration,
    cancel: &CancellationToken,
    work: impl Future<Output = T>,
) -> Result<T, Interrupted> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Interrupted::Cancelled),
        outcome = tokio::time::timeout(budget, work) => outcome.map_err(|_| Interrupted::TimedOut),
    }
}

/// When `freight` was approved for `stage`, as Kargo recorded it.
fn approved_at(freight: &Freight, stage: &str) -> Option<String> {
    freight.approved_at(stage).map(|at| at.to_string())
}

fn id(project: &str, stage: &str, freight: &str) -> String {
    format!("{project}/{stage}/{freight}")
}

/// Fills the computed values of `state` that are still unknown from the freight.
fn fill_from_freight(state: &mut Value, freight: &Freight, project: &str, stage: &str) {
    let values = [
        ("freight_name", Value::string(freight.name())),
        (
            FREIGHT_ALIAS,
            freight.alias().map_or(Value::Null, Value::string),
        ),
        ("artifacts", artifacts_value(freight)),
        ("id", Value::string(id(project, stage, freight.name()))),
    ];
    common::fill_unknown(state, values);
}

#[async_trait]
impl Resource for FreightApprovalResource {
    fn type_name(&self) -> &'static str {
        "kargo_freight_approval"
    }

    fn schema(&self) -> Schema {
        self.schema.clone()
    }

    fn upgrade_state(&self, version: i64, state: &mut serde_json::Value) -> Diagnostics {
        common::upgrade_state(&self.schema, version, state)
    }

    async fn plan(&self, _ctx: &Context, req: PlanRequest) -> PlanResponse {
        let mut resp = plan_from_schema(&self.schema, &req);
        if req.config.is_null() {
            resp.diagnostics
                .extend(self.kept_through_api_server(&req.prior_state));
            return resp;
        }
        let prior = &req.prior_state;
        let creating = prior.is_null();
        let planned = &mut resp.planned_state;
        let project = text(planned.get("project"));
        let stage = text(planned.get("stage"));
        let choice = FreightChoice::from_config(&req.config);
        let is_selector = matches!(choice, Some(FreightChoice::Selector(_)));
        let changed = creating || choice_changed(&WAYS, &req.config, &req.config, prior);
        let mut diags = Diagnostics::default();
        let target = match (&project, &stage, &choice) {
            _ if !changed && !is_selector => Target::Keep,
            (Some(project), Some(stage), Some(choice)) => {
                self.resolve_at_plan(project, stage, choice, &mut diags)
                    .await
            }
            _ => Target::Unknown,
        };
        let target = match target {
            // A selector that cannot be re-checked keeps what it chose before.
            Target::Unknown if !changed => Target::Keep,
            t => t,
        };
        let same_place = !creating
            && values_equal(planned.get("project"), prior.get("project"))
            && values_equal(planned.get("stage"), prior.get("stage"));
        match target {
            Target::Keep => {
                for name in ["freight_name", "artifacts", "approved_at"] {
                    planned.set(name, prior.get(name).clone());
                }
                set_alias_output(planned, &req.config, prior.get(FREIGHT_ALIAS).clone());
            }
            Target::Resolved(freight) => {
                for name in ["freight_name", "artifacts", "id"] {
                    planned.set(name, Value::Unknown);
                }
                set_alias_output(planned, &req.config, Value::Unknown);
                if let (Some(project), Some(stage)) = (&project, &stage) {
                    fill_from_freight(planned, &freight, project, stage);
                }
                let same_freight =
                    same_place && prior.get("freight_name").as_str() == Some(freight.name());
                planned.set(
                    "approved_at",
                    if same_freight {
                        prior.get("approved_at").clone()
                    } else {
                        Value::Unknown
                    },
                );
            }
            Target::Unknown => {
                for name in ["freight_name", "artifacts", "approved_at"] {
                    planned.set(name, Value::Unknown);
                }
                set_alias_output(planned, &req.config, Value::Unknown);
                // Chosen by name, the freight is known even without the cluster.
                if let Some(name) = req.config.get(FREIGHT).as_str() {
                    planned.set("freight_name", Value::string(name));
                }
            }
        }
        let id = match (&project, &stage, planned.get("freight_name").as_str()) {
            (Some(p), Some(s), Some(f)) => Value::string(id(p, s, f)),
            _ => Value::Unknown,
        };
        planned.set("id", id);
        if !creating {
            resp.requires_replace = requires_replace_paths(&self.schema.block, prior, planned);
            if !same_place || !resp.requires_replace.is_empty() {
                planned.set("approved_at", Value::Unknown);
            }
            if !resp.requires_replace.is_empty() {
                diags.extend(self.kept_through_api_server(prior));
            }
        }
        resp.diagnostics.extend(diags);
        resp
    }

    async fn create(&self, ctx: &Context, planned: Value, config: Value) -> ApplyResult {
        let (Some(project), Some(stage)) =
            (text(planned.get("project")), text(planned.get("stage")))
        else {
            return fail(
                Diagnostic::error(
                    "Missing identity",
                    "`project` and `stage` must be known to approve freight.",
                )
                .into(),
            );
        };
        let budget = timeout(&planned, "create", CREATE_TIMEOUT);
        let work = async {
            let client = common::write_client(&self.data, ctx)
                .await
                .map_err(|e| common::diagnostics("connect to the cluster", &e, &no_field))?;
            self.approve(&client, &project, &stage, &planned, &config)
                .await
        };
        let outcome = match bounded(budget, &ctx.cancel, work).await {
            Ok(outcome) => outcome,
            Err(Interrupted::Cancelled) => Err(Diagnostic::error(
                "Approval interrupted",
                format!(
                    "Approving the freight for stage {stage:?} was interrupted. If the approval \
                     was written, the next apply adopts it."
                ),
            )
            .into()),
            Err(Interrupted::TimedOut) => Err(Diagnostic::error(
                "Approval timed out",
                format!(
                    "Approving the freight for stage {stage:?} did not finish within {}; raise \
                     `timeouts.create` if the cluster is slow to answer. If the approval was \
                     written, the next apply adopts it.",
                    format_go_duration(budget)
                ),
            )
            .into()),
        };
        match outcome {
            Ok((freight, approved_at)) => {
                let mut state = planned;
                fill_from_freight(&mut state, &freight, &project, &stage);
                state.set("approved_at", Value::string(approved_at));
                ApplyResult {
                    new_state: state,
                    private: Vec::new(),
                    diagnostics: Diagnostics::default(),
                }
            }
            Err(d) => fail(d),
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
        // Only how the same freight is chosen (or a timeout) changed: nothing to write.
        let mut state = planned;
        let names = [
            "freight_name",
            FREIGHT_ALIAS,
            "artifacts",
            "approved_at",
            "id",
        ];
        common::fill_unknown(
            &mut state,
            names.map(|name| (name, prior.get(name).clone())),
        );
        ApplyResult {
            new_state: state,
            private: Vec::new(),
            diagnostics: Diagnostics::default(),
        }
    }

    async fn delete(&self, ctx: &Context, prior: Value, _private: Vec<u8>) -> Diagnostics {
        let (Some(project), Some(stage), Some(name)) = (
            text(prior.get("project")),
            text(prior.get("stage")),
            text(prior.get("freight_name")),
        ) else {
            return Diagnostics::default();
        };
        let client = match self.client() {
            Ok(c) => c,
            Err(d) => return d,
        };
        let budget = timeout(&prior, "delete", DELETE_TIMEOUT);
        let work = withdraw(&client, &project, &stage, &name);
        match bounded(budget, &ctx.cancel, work).await {
            Ok(diags) => diags,
            Err(Interrupted::Cancelled) => Diagnostic::error(
                "Withdrawing the approval was interrupted",
                format!(
                    "The approval of freight {name:?} for stage {stage:?} may still be in place; \
                     run destroy again."
                ),
            )
            .into(),
            Err(Interrupted::TimedOut) => Diagnostic::error(
                "Withdrawing the approval timed out",
                format!(
                    "The approval of freight {name:?} for stage {stage:?} could not be withdrawn \
                     within {}; run destroy again or raise `timeouts.delete`.",
                    format_go_duration(budget)
                ),
            )
            .into(),
        }
    }

    async fn read(&self, _ctx: &Context, state: Value, private: Vec<u8>) -> ReadResult {
        let importing = private == IMPORTING;
        let (Some(project), Some(stage), Some(name)) = (
            text(state.get("project")),
            text(state.get("stage")),
            text(state.get("freight_name")),
        ) else {
            return ReadResult::default();
        };
        let what = format!("freight {name:?} in project {project:?}");
        let failed = |e: &KargoError| {
            common::refresh_failed(
                "Freight approval",
                &what,
                e,
                state.clone(),
                private.clone(),
                importing,
                &no_field,
            )
        };
        let client = match self.data.client() {
            Ok(c) => c,
            Err(e) => return failed(&e),
        };
        let live = match client.get::<Freight>(Some(&project), &name).await {
            // Freight on its way out is gone, and its approval with it.
            Ok(live) => live.filter(|f| !f.is_terminating()),
            Err(e) => return failed(&e),
        };
        let cannot_import = |detail: String| ReadResult {
            new_state: Value::Null,
            private: Vec::new(),
            diagnostics: Diagnostic::error("Cannot import the approval", detail).into(),
        };
        let freight = match live {
            Some(f) => f,
            None if importing => {
                return cannot_import(format!(
                    "Project {project:?} has no freight named {name:?}."
                ));
            }
            // The freight is gone (deleted or garbage-collected), and its approval with it.
            None => return ReadResult::default(),
        };
        let approved_at = approved_at(&freight, &stage);
        if !freight.is_approved_for(&stage) {
            if importing {
                return cannot_import(format!(
                    "{} is not approved for stage {stage:?}.",
                    freight.describe()
                ));
            }
            // Withdrawn outside Terraform (or the stage was deleted): plan approves again.
            return ReadResult::default();
        }
        let mut new_state = state.clone();
        new_state.set("id", Value::string(id(&project, &stage, freight.name())));
        new_state.set(
            FREIGHT_ALIAS,
            freight.alias().map_or(Value::Null, Value::string),
        );
        new_state.set("artifacts", artifacts_value(&freight));
        new_state.set(
            "approved_at",
            approved_at.map_or(Value::Null, Value::string),
        );
        if importing {
            new_state.set(FREIGHT, Value::string(freight.name()));
        }
        ReadResult {
            new_state,
            private: Vec::new(),
            diagnostics: Diagnostics::default(),
        }
    }

    async fn import(&self, _ctx: &Context, id: &str) -> ImportResult {
        let invalid = |detail: String| ImportResult {
            diagnostics: Diagnostic::error("Invalid import ID", detail).into(),
            ..ImportResult::default()
        };
        let parts: Vec<&str> = id.split('/').collect();
        let [project, stage, freight] = parts.as_slice() else {
            return invalid(format!(
                "Import an approval as `<project>/<stage>/<freight name>`; got {id:?}."
            ));
        };
        if let Some(problem) = common::dns_label_problem(project) {
            return invalid(format!("The project {project:?} in {id:?} {problem}."));
        }
        for (what, name) in [("stage", stage), ("freight name", freight)] {
            if let Some(problem) = common::dns_subdomain_problem(name) {
                return invalid(format!("The {what} {name:?} in {id:?} {problem}."));
            }
        }
        let mut state = self.schema.block.shape().empty_value();
        state.set("project", Value::string(*project));
        state.set("stage", Value::string(*stage));
        state.set("freight_name", Value::string(*freight));
        state.set("id", Value::string(id));
        ImportResult {
            state,
            private: IMPORTING.to_vec(),
            diagnostics: Diagnostics::default(),
        }
    }
}

/// Withdraws the approval unless the stage has used it; then it only says that it cannot.
async fn withdraw(client: &KargoClient, project: &str, stage: &str, name: &str) -> Diagnostics {
    let freight = match client.get::<Freight>(Some(project), name).await {
        Ok(Some(live)) => live,
        Ok(None) => return Diagnostics::default(),
        Err(e) => return common::diagnostics("read the freight", &e, &no_field),
    };
    if !freight.is_approved_for(stage) {
        return Diagnostics::default();
    }
    let stage_live = match client.get::<Stage>(Some(project), stage).await {
        Ok(s) => s,
        Err(e) => return common::diagnostics("read the stage", &e, &no_field),
    };
    if let Some(why) = used_by_stage(&freight, stage, stage_live.as_ref()) {
        return Diagnostic::warning(
            "Approval kept: the freight has been used",
            format!(
                "{} stays approved for stage {stage:?} because {why}. A promotion cannot be \
                 undone, so withdrawing the approval would change nothing; it was only removed \
                 from the Terraform state.",
                freight.describe()
            ),
        )
        .into();
    }
    if client.transport() == Transport::KargoApiServer {
        return Diagnostic::warning(
            "Approval kept: Kargo's API server cannot withdraw it",
            format!(
                "{} stays approved for stage {stage:?}: Kargo's REST API has no route to \
                 withdraw an approval, so it was only removed from the Terraform state. \
                 Connect through the Kubernetes API to withdraw approvals on destroy.",
                freight.describe()
            ),
        )
        .into();
    }
    let patch = json!({"status": {"approvedFor": {stage: null}}});
    match client
        .merge_patch_status::<Freight>(Some(project), name, &patch)
        .await
    {
        Ok(_) | Err(KargoError::NotFound { .. }) => Diagnostics::default(),
        Err(e) => write_error("withdraw the approval", &e).into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::*;
    use crate::kargo::types::test_support::stage;
    use crate::plugin::Severity;
    use crate::plugin::validate::validate_config;
    use crate::resolve::{ORIGIN_WAREHOUSE, add_planned_approvals};
    use crate::resources::convert::test_support::offline_client;

    fn s(v: &str) -> Value {
        Value::string(v)
    }

    fn resource() -> FreightApprovalResource {
        FreightApprovalResource::new(ProviderData::from_client(offline_client()))
    }

    fn config(j: Json) -> Value {
        Value::from_json(&j, &schema_block().implied_type())
    }

    fn freight(status: Json) -> Freight {
        crate::kargo::types::test_support::freight(json!({
            "metadata": {"name": "f1", "namespace": "shop"},
            "alias": "tall-fox",
            "origin": {"kind": "Warehouse", "name": "app"},
            "images": [{"repoURL": "ghcr.io/acme/app", "tag": "1.0.0"}],
            "status": status,
        }))
    }

    fn prior() -> Value {
        let mut state = config(json!({"project": "shop", "stage": "prod", "freight": "f1"}));
        state.set("freight_name", s("f1"));
        state.set(FREIGHT_ALIAS, s("tall-fox"));
        state.set("artifacts", artifacts_value(&freight(json!({}))));
        state.set("approved_at", s("2025-01-01T00:00:00Z"));
        state.set("id", s("shop/prod/f1"));
        state
    }

    async fn plan(config: &Value, prior: &Value) -> PlanResponse {
        let req = PlanRequest {
            prior_state: prior.clone(),
            proposed_new_state: config.clone(),
            config: config.clone(),
            prior_private: Vec::new(),
        };
        resource().plan(&Context::default(), req).await
    }

    fn validation(j: Json) -> Vec<(String, String)> {
        validate_config(&schema_block(), &config(j))
            .0
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                (
                    d.attribute.map(|p| p.to_string()).unwrap_or_default(),
                    d.detail,
                )
            })
            .collect()
    }

    #[test]
    fn the_choice_is_exactly_one_way_without_available_only() {
        assert!(
            validation(json!({"project": "shop", "stage": "prod", "freight": "f1"})).is_empty()
        );
        let both = validation(
            json!({"project": "shop", "stage": "prod", "freight": "f1", "freight_alias": "x"}),
        );
        assert_eq!(both.len(), 1, "{both:?}");
        let found = validation(
            json!({"project": "shop", "stage": "prod", "freight_selector": {
            "warehouse": "app", "image": {"repo_url": "ghcr.io/acme/app"}, "available_only": true}}),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "freight_selector.available_only");
        assert!(
            found[0].1.contains("considers all freight"),
            "{}",
            found[0].1
        );
        assert!(
            validation(json!({"project": "shop", "stage": "prod", "freight_selector": {
                "warehouse": "app", "image": {"repo_url": "ghcr.io/acme/app"}, "available_only": false}}))
            .is_empty()
        );
        assert!(
            schema_block().attribute(ORIGIN_WAREHOUSE).is_none(),
            "Kargo's auto-promotion pick is not offered"
        );
    }

    #[test]
    fn every_attribute_is_described_and_rbac_is_documented() {
        let block = schema_block();
        common::assert_described(&block);
        assert!(block.description.contains("`freights/status`"));
        assert!(
            block
                .description
                .contains("only removes it from the Terraform state")
        );
        assert!(block.attribute(FREIGHT_ALIAS).unwrap().computed);
    }

    #[tokio::test]
    async fn an_unreachable_cluster_plans_unknowns_with_a_warning() {
        let config =
            config(json!({"project": "shop", "stage": "prod", "freight_alias": "tall-fox"}));
        let resp = plan(&config, &Value::Null).await;
        assert!(!resp.diagnostics.has_errors(), "{:?}", resp.diagnostics);
        let warning = &resp.diagnostics.0[0];
        assert_eq!(warning.severity, Severity::Warning);
        assert!(
            warning.detail.contains("freight alias \"tall-fox\""),
            "{}",
            warning.detail
        );
        let planned = &resp.planned_state;
        assert_eq!(planned.get("freight_name"), &Value::Unknown);
        assert_eq!(planned.get("id"), &Value::Unknown);
        assert_eq!(planned.get(FREIGHT_ALIAS), &s("tall-fox"), "as configured");
    }

    #[tokio::test]
    async fn without_the_cluster_a_freight_chosen_by_name_is_still_known() {
        let config = config(json!({"project": "shop", "stage": "prod", "freight": "f1"}));
        let resp = plan(&config, &Value::Null).await;
        assert_eq!(resp.diagnostics.0[0].severity, Severity::Warning);
        assert_eq!(resp.planned_state.get("freight_name"), &s("f1"));
        assert_eq!(resp.planned_state.get("id"), &s("shop/prod/f1"));
        assert_eq!(resp.planned_state.get("artifacts"), &Value::Unknown);
    }

    #[tokio::test]
    async fn an_unchanged_choice_keeps_the_approval_without_asking_the_cluster() {
        let config = config(json!({"project": "shop", "stage": "prod", "freight": "f1"}));
        let resp = plan(&config, &prior()).await;
        assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
        assert!(resp.requires_replace.is_empty());
        assert_eq!(resp.planned_state, prior());
    }

    #[tokio::test]
    async fn a_selector_that_cannot_be_rechecked_keeps_its_freight() {
        let selector = json!({"warehouse": "app", "image": {"repo_url": "ghcr.io/acme/app"}});
        let config =
            config(json!({"project": "shop", "stage": "prod", "freight_selector": selector}));
        let mut prior = prior();
        prior.set(FREIGHT, Value::Null);
        prior.set(FREIGHT_SELECTOR, config.get(FREIGHT_SELECTOR).clone());
        let resp = plan(&config, &prior).await;
        assert!(
            resp.requires_replace.is_empty(),
            "{:?}",
            resp.requires_replace
        );
        assert_eq!(resp.planned_state.get("freight_name"), &s("f1"));
        assert_eq!(resp.diagnostics.0[0].severity, Severity::Warning);
    }

    #[tokio::test]
    async fn another_freight_or_stage_replaces() {
        let mut other = config(json!({"project": "shop", "stage": "prod", "freight": "f2"}));
        let resp = plan(&other, &prior()).await;
        assert_eq!(
            resp.requires_replace,
            vec![AttributePath::attr("freight_name")]
        );
        assert_eq!(resp.planned_state.get("approved_at"), &Value::Unknown);
        other.set(FREIGHT, s("f1"));
        other.set("stage", s("uat"));
        let resp = plan(&other, &prior()).await;
        assert_eq!(resp.requires_replace, vec![AttributePath::attr("stage")]);
        assert_eq!(resp.planned_state.get("approved_at"), &Value::Unknown);
        assert_eq!(resp.planned_state.get("id"), &s("shop/uat/f1"));
    }

    #[test]
    fn choosing_the_same_freight_differently_is_a_change_of_choice_only() {
        let by_alias =
            config(json!({"project": "shop", "stage": "prod", "freight_alias": "tall-fox"}));
        assert!(
            choice_changed(&WAYS, &by_alias, &by_alias, &prior()),
            "freight was set before"
        );
        let mut alias_prior = prior();
        alias_prior.set(FREIGHT, Value::Null);
        assert!(!choice_changed(&WAYS, &by_alias, &by_alias, &alias_prior));
        let by_name = config(json!({"project": "shop", "stage": "prod", "freight": "f1"}));
        assert!(
            !choice_changed(&WAYS, &by_name, &by_name, &prior()),
            "the reported alias is not a choice"
        );
    }

    #[test]
    fn the_stage_must_request_the_freights_warehouse() {
        let f = freight(json!({}));
        let missing = stage_refusal("prod", "shop", None, &f).unwrap();
        assert_eq!(missing.attribute.unwrap().to_string(), "stage");
        assert!(
            missing
                .detail
                .contains("does not exist in project \"shop\"")
        );
        let stage = stage(
            json!({"metadata": {"name": "prod", "namespace": "shop"}, "spec": {"requestedFreight": [
            {"origin": {"kind": "Warehouse", "name": "config"}, "sources": {"direct": true}}]}}),
        );
        let d = stage_refusal("prod", "shop", Some(&stage), &f).unwrap();
        assert_eq!(d.attribute.unwrap().to_string(), "stage");
        assert!(
            d.detail
                .contains("does not request freight from warehouse \"app\""),
            "{}",
            d.detail
        );
        assert!(
            d.detail
                .contains("requests freight from warehouse \"config\""),
            "{}",
            d.detail
        );
        let ok = crate::kargo::types::test_support::stage(
            json!({"metadata": {"name": "prod"}, "spec": {"requestedFreight": [
            {"origin": {"kind": "Warehouse", "name": "app"}, "sources": {"stages": ["dev"]}}]}}),
        );
        assert!(stage_refusal("prod", "shop", Some(&ok), &f).is_none());
    }

    #[test]
    fn an_approval_is_used_once_the_stage_took_the_freight() {
        let fresh = freight(json!({"approvedFor": {"prod": {}}}));
        let stage = stage(json!({"status": {"freightHistory": [
            {"items": {"Warehouse/app": {"name": "f0"}}}]}}));
        assert_eq!(used_by_stage(&fresh, "prod", Some(&stage)), None);
        assert_eq!(used_by_stage(&fresh, "prod", None), None);
        let current = freight(json!({"currentlyIn": {"prod": {}}}));
        assert!(
            used_by_stage(&current, "prod", None)
                .unwrap()
                .contains("holds now")
        );
        let verified = freight(json!({"verifiedIn": {"prod": {}}}));
        assert!(
            used_by_stage(&verified, "prod", None)
                .unwrap()
                .contains("verified")
        );
        let history =
            crate::kargo::types::test_support::stage(json!({"status": {"freightHistory": [
            {"items": {"Warehouse/app": {"name": "f2"}}},
            {"items": {"Warehouse/app": {"name": "f1"}}}]}}));
        assert!(
            used_by_stage(&fresh, "prod", Some(&history))
                .unwrap()
                .contains("has held it")
        );
        let promoting =
            crate::kargo::types::test_support::stage(json!({"metadata": {"name": "prod"},
            "status": {"currentPromotion": {"name": "p", "freight": {"name": "f1"}}}}));
        assert!(
            used_by_stage(&fresh, "prod", Some(&promoting))
                .unwrap()
                .contains("running")
        );
    }

    #[test]
    fn refusals_land_on_the_stage_and_name_the_rbac() {
        use crate::kargo::error::Cause;
        let err = KargoError::Invalid {
            what: "Freight \"shop/f1\"".into(),
            message: "Stage \"qa\" does not request Freight from origin".into(),
            causes: vec![Cause {
                field: "status.approvedFor.qa".into(),
                message: "does not request".into(),
                reason: "FieldValueInvalid".into(),
            }],
        };
        let d = write_error("approve the freight", &err);
        assert_eq!(d.attribute.unwrap().to_string(), "stage");
        let forbidden = KargoError::Forbidden {
            what: "Freight \"shop/f1\"".into(),
            message: "cannot patch resource freights/status".into(),
        };
        let d = write_error("approve the freight", &forbidden);
        assert!(
            d.detail.contains("`patch` on `freights/status`"),
            "{}",
            d.detail
        );
    }

    #[tokio::test]
    async fn import_ids_name_project_stage_and_freight() {
        let r = resource();
        let ok = r.import(&Context::default(), "shop/prod/f1").await;
        assert!(ok.diagnostics.is_empty());
        assert_eq!(ok.state.get("freight_name"), &s("f1"));
        assert_eq!(ok.state.get("stage"), &s("prod"));
        assert_eq!(ok.private, IMPORTING.to_vec());
        for bad in ["shop/f1", "shop/prod/f1/x", "Shop/prod/f1", "shop/prod/"] {
            let res = r.import(&Context::default(), bad).await;
            assert!(res.diagnostics.has_errors(), "{bad}");
            assert_eq!(res.diagnostics.0[0].summary, "Invalid import ID");
        }
    }

    #[tokio::test]
    async fn planned_approvals_count_for_what_is_planned_after_them() {
        let client = offline_client();
        let mut freights = vec![freight(json!({}))];
        expect_approval(&client, "planned", "f1", "prod");
        add_planned_approvals(client.host(), "elsewhere", &mut freights);
        assert!(!freights[0].is_approved_for("prod"), "another project");
        add_planned_approvals("https://other:6443", "planned", &mut freights);
        assert!(!freights[0].is_approved_for("prod"), "another cluster");
        add_planned_approvals(client.host(), "planned", &mut freights);
        assert!(freights[0].is_approved_for("prod"));
        assert!(!freights[0].is_approved_for("dev"));
    }

    #[tokio::test]
    async fn an_unreachable_cluster_keeps_the_state_with_the_warning_every_resource_gives() {
        let r = resource();
        let res = r.read(&Context::default(), prior(), Vec::new()).await;
        assert!(!res.diagnostics.has_errors(), "{:?}", res.diagnostics);
        assert_eq!(
            res.diagnostics.0[0].summary,
            "Freight approval not refreshed"
        );
        assert!(
            res.diagnostics.0[0]
                .detail
                .contains("so the state is kept as it was"),
            "{:?}",
            res.diagnostics
        );
        assert_eq!(res.new_state, prior());
    }
}
