# Keep the dev stage on the newest 1.x image of the guestbook warehouse. `terraform plan`
# shows which freight that is, what dev runs now and which versions change; a newer
# matching image published later shows up in the next plan as a new promotion.
resource "kargo_promotion" "dev" {
  project = "guestbook"
  stage   = "dev"

  freight_selector {
    warehouse          = "guestbook"
    version_constraint = "^1.0"
    image { repo_url = "ghcr.io/acme/guestbook" }
  }

  # Apply waits for the promotion to finish, for at most this long.
  timeouts { create = "15m" }
}

output "dev_changes" {
  value = [for c in kargo_promotion.dev.changes : "${c.repo_url}: ${coalesce(c.from, "-")} -> ${coalesce(c.to, "-")}"]
}
