# The newest 1.x guestbook release that has been verified in staging: the candidate for
# production.
data "kargo_freight" "candidate" {
  project           = "guestbook"
  verified_in_stage = "staging"

  freight_selector {
    warehouse          = "guestbook"
    version_constraint = "^1.0"
    image { repo_url = "ghcr.io/acme/guestbook" }
  }
}

# A freight by its alias, as Kargo's UI shows it.
data "kargo_freight" "known_good" {
  project = "guestbook"
  alias   = "tall-fox"
}

output "production_candidate" {
  value = "${data.kargo_freight.candidate.alias}: ${data.kargo_freight.candidate.artifacts.images[0].tag}"
}

output "known_good_stages" {
  value = data.kargo_freight.known_good.currently_in
}
