# Fast-track a hotfix to staging without waiting for it to pass dev: approve the newest
# 1.4.x image of the guestbook warehouse for the "staging" stage, then promote it.
resource "kargo_freight_approval" "hotfix" {
  project = "guestbook"
  stage   = "staging"

  freight_selector {
    warehouse          = "guestbook"
    version_constraint = "~1.4.0"
    image { repo_url = "ghcr.io/acme/guestbook" }
  }
}

# Referring to the approval orders the two: the approval is planned and applied first, so
# the promotion's plan-time availability check counts on it.
resource "kargo_promotion" "hotfix" {
  project = kargo_freight_approval.hotfix.project
  stage   = kargo_freight_approval.hotfix.stage
  freight = kargo_freight_approval.hotfix.freight_name
}

output "approved" {
  value = "${kargo_freight_approval.hotfix.freight_alias} approved for staging at ${kargo_freight_approval.hotfix.approved_at}"
}
