# The dev → staging → production pipeline for my-app, switched on and off with the rest of
# Kargo by `enable_kargo`. Turning the flag off destroys it in dependency order (stages,
# then the warehouse and the promotion task, then the project and its namespace).

resource "kargo_project" "app" {
  count = local.kargo_count

  name = local.app

  labels = {
    "app.kubernetes.io/part-of" = local.app
  }

  # New freight flows into dev and staging on its own; production moves only when a person
  # (or this configuration, see promotion.tf) promotes it.
  promotion_policies {
    auto_promotion_enabled = true
    stage_selector { name = "dev" }
  }
  promotion_policies {
    auto_promotion_enabled = true
    stage_selector { name = "staging" }
  }
  promotion_policies {
    auto_promotion_enabled = false
    stage_selector { name = "production" }
  }
}

# New SemVer releases of the image on GHCR become freight.
resource "kargo_warehouse" "app" {
  count = local.kargo_count

  project  = kargo_project.app[0].name
  name     = local.app
  interval = "5m"

  subscriptions {
    image {
      repo_url                 = var.image_repository
      image_selection_strategy = "SemVer"
      constraint               = var.image_constraint
      discovery_limit          = 10
    }
  }
}

# How dev and staging are updated: set the image in the stage's Kustomize overlay, commit
# straight to main, and point the stage's Argo CD Application at that commit.
resource "kargo_promotion_task" "update_image" {
  count = local.kargo_count

  project = kargo_project.app[0].name
  name    = "update-image"

  vars {
    name  = "repoURL"
    value = var.manifests_repo_url
  }
  vars {
    name  = "image"
    value = var.image_repository
  }

  steps {
    uses = "git-clone"
    config = jsonencode({
      repoURL  = "$${{ vars.repoURL }}"
      checkout = [{ branch = "main", path = "./src" }]
    })
  }
  steps {
    uses = "kustomize-set-image"
    as   = "set-image"
    config = jsonencode({
      path   = "./src/apps/${local.app}/envs/$${{ ctx.stage }}"
      images = [{ image = "$${{ vars.image }}", tag = "$${{ imageFrom(vars.image).Tag }}" }]
    })
  }
  steps {
    uses = "git-commit"
    as   = "commit"
    config = jsonencode({
      path    = "./src"
      message = "${local.app}: promote $${{ imageFrom(vars.image).Tag }} to $${{ ctx.stage }}"
    })
  }
  steps {
    uses   = "git-push"
    config = jsonencode({ path = "./src", targetBranch = "main" })
  }
  steps {
    uses = "argocd-update"
    config = jsonencode({
      apps = [{
        name    = "${local.app}-$${{ ctx.stage }}"
        sources = [{ repoURL = "$${{ vars.repoURL }}", desiredRevision = "$${{ task.outputs.commit.commit }}" }]
      }]
    })
  }
}

resource "kargo_stage" "dev" {
  count = local.kargo_count

  project = kargo_project.app[0].name
  name    = "dev"

  requested_freight {
    origin { name = kargo_warehouse.app[0].name }
    sources { direct = true }
  }

  promotion_template {
    steps {
      task { name = kargo_promotion_task.update_image[0].name }
    }
  }
}

resource "kargo_stage" "staging" {
  count = local.kargo_count

  project = kargo_project.app[0].name
  name    = "staging"

  # Freight reaches staging once it has run in dev for half an hour.
  requested_freight {
    origin { name = kargo_warehouse.app[0].name }
    sources {
      stages             = [kargo_stage.dev[0].name]
      required_soak_time = "30m"
    }
  }

  promotion_template {
    steps {
      task { name = kargo_promotion_task.update_image[0].name }
    }
  }

  # Argo Rollouts runs this AnalysisTemplate (shipped with the app's manifests in the
  # project namespace) after every promotion; freight that fails it never reaches production.
  verification {
    analysis_templates { name = "${local.app}-smoke-test" }
    args {
      name  = "service"
      value = "${local.app}.staging.svc.cluster.local"
    }
  }
}

resource "kargo_stage" "production" {
  count = local.kargo_count

  project = kargo_project.app[0].name
  name    = "production"

  requested_freight {
    origin { name = kargo_warehouse.app[0].name }
    sources { stages = [kargo_stage.staging[0].name] }
  }

  # Production changes go through review: the promotion pushes to a new branch, opens a
  # pull request and waits for it to be merged before Argo CD syncs the merge commit.
  promotion_template {
    vars {
      name  = "repoURL"
      value = var.manifests_repo_url
    }
    vars {
      name  = "image"
      value = var.image_repository
    }
    steps {
      uses = "git-clone"
      config = jsonencode({
        repoURL  = "$${{ vars.repoURL }}"
        checkout = [{ branch = "main", path = "./src" }]
      })
    }
    steps {
      uses = "kustomize-set-image"
      config = jsonencode({
        path   = "./src/apps/${local.app}/envs/production"
        images = [{ image = "$${{ vars.image }}", tag = "$${{ imageFrom(vars.image).Tag }}" }]
      })
    }
    steps {
      uses = "git-commit"
      config = jsonencode({
        path    = "./src"
        message = "${local.app}: promote $${{ imageFrom(vars.image).Tag }} to production"
      })
    }
    steps {
      uses   = "git-push"
      as     = "push"
      config = jsonencode({ path = "./src", generateTargetBranch = true })
    }
    steps {
      uses = "git-open-pr"
      as   = "open-pr"
      config = jsonencode({
        repoURL      = "$${{ vars.repoURL }}"
        provider     = "github"
        sourceBranch = "$${{ outputs.push.branch }}"
        targetBranch = "main"
        title        = "${local.app}: promote $${{ imageFrom(vars.image).Tag }} to production"
        labels       = ["kargo", "production"]
      })
    }
    steps {
      uses = "git-wait-for-pr"
      as   = "wait-for-pr"
      config = jsonencode({
        repoURL  = "$${{ vars.repoURL }}"
        provider = "github"
        prNumber = "$${{ outputs['open-pr'].pr.id }}"
      })
    }
    steps {
      uses = "argocd-update"
      config = jsonencode({
        apps = [{
          name    = "${local.app}-production"
          sources = [{ repoURL = "$${{ vars.repoURL }}", desiredRevision = "$${{ outputs['wait-for-pr'].commit }}" }]
        }]
      })
    }
  }
}
