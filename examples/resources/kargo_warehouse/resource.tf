# A warehouse watching the three kinds of artifact a release is made of: the application's
# image, the Git repository holding its manifests, and a Helm chart it depends on. Each new
# combination Kargo finds becomes a piece of freight that stages can promote.
resource "kargo_warehouse" "guestbook" {
  project = "guestbook"
  name    = "guestbook"

  # How often Kargo looks for new artifacts (default 5m). A webhook receiver on the project
  # (see kargo_project) makes it look at once when something is pushed.
  interval = "10m"

  subscriptions {
    image {
      repo_url                 = "ghcr.io/acme/guestbook"
      image_selection_strategy = "SemVer"
      constraint               = "^1.4.0"
      discovery_limit          = 10
    }
  }
  subscriptions {
    git {
      repo_url = "https://github.com/acme/guestbook-deploy.git"
      branch   = "main"
      # Only commits touching the base manifests make new freight.

      include_paths = ["base"]
    }
  }
  subscriptions {
    chart {
      repo_url          = "oci://registry-1.docker.io/bitnamicharts/redis"
      semver_constraint = "^20.0.0"
    }
  }
}
