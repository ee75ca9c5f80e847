# Production runs the freight named by var.production_freight. The approval is recorded in
# Kargo (the UI shows who approved what for production) and makes that freight eligible
# even if it did not come through staging, e.g. a hotfix; the promotion then opens the
# production pull request. `terraform plan` shows which freight moves into production.

resource "kargo_freight_approval" "production" {
  count = local.production_count

  project       = kargo_project.app[0].name
  stage         = kargo_stage.production[0].name
  freight_alias = var.production_freight
}

resource "kargo_promotion" "production" {
  count = local.production_count

  project       = kargo_project.app[0].name
  stage         = kargo_stage.production[0].name
  freight_alias = var.production_freight

  # The promotion waits for a reviewer to merge its pull request; the apply waits with it,
  # up to timeouts.create. Destroying this resource never rolls production back.
  wait             = true
  abort_on_destroy = false
  timeouts { create = "2h" }

  depends_on = [kargo_freight_approval.production]
}

output "production_promotion" {
  description = "The promotion that put var.production_freight into production, and how it went."
  value = one([for p in kargo_promotion.production : {
    name  = p.promotion_name
    phase = p.phase
  }])
}
