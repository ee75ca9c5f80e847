# What a user would write from the DoKa Seca RFC's pre-v1.0 Kargo manifests, translated
# field by field. It must not plan: every construct Kargo has since replaced is rejected with
# a message naming its replacement.

resource "kargo_warehouse" "my_app" {
  name = "my-app-warehouse"
  subscriptions {
    image {
      repo_url               = "ghcr.io/dokaseca/my-app"
      tag_selection_strategy = { sem_ver = { allow_prerelease = false } }
    }
  }
}

resource "kargo_stage" "dev" {
  name = "dev"
  requested_freight {
    origin {
      kind = "Warehouse"
      name = "my-app-warehouse"
    }
    sources { direct = true }
  }
  promotion_mechanisms = {
    git_repo_updates = [{
      repo_url     = "https://github.com/dokaseca/manifests"
      write_branch = "main"
      kustomize    = { images = [{ image = "ghcr.io/dokaseca/my-app", path = "apps/my-app/envs/dev" }] }
    }]
  }
}

resource "kargo_stage" "staging" {
  name = "staging"
  requested_freight {
    origin {
      kind = "Stage"
      name = "dev"
    }
    sources { stages = ["dev"] }
  }
  verification {
    analysis_templates { name = "dev-health-check" }
  }
  promotion_mechanisms = {
    git_repo_updates = [{
      repo_url     = "https://github.com/dokaseca/manifests"
      write_branch = "main"
      kustomize    = { images = [{ image = "ghcr.io/dokaseca/my-app", path = "apps/my-app/envs/staging" }] }
    }]
  }
}

resource "kargo_stage" "production" {
  name = "production"
  requested_freight {
    origin {
      kind = "Stage"
      name = "staging"
    }
    sources { stages = ["staging"] }
  }
  promotion_policy = {
    auto_promotion_enabled = false # Requires manual approval
  }
  promotion_mechanisms = {
    git_repo_updates = [{
      repo_url     = "https://github.com/dokaseca/manifests"
      write_branch = "main"
      kustomize    = { images = [{ image = "ghcr.io/dokaseca/my-app", path = "apps/my-app/envs/production" }] }
    }]
  }
}
