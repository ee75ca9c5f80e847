# Two stages of a pipeline fed by the "guestbook" warehouse. Both promote the same way: the
# new image tag is written into the stage's overlay in the GitOps repository, committed,
# pushed, and Argo CD is pointed at the new commit. Kargo expressions such as
# `${{ ctx.stage }}` are written `$${{ ... }}` so that Terraform leaves them alone.
#
# The shared steps and variables are kept in locals and written into each stage with
# `dynamic` blocks: one `steps` (or `vars`) block per element of the list.
locals {
  promotion_steps = [
    {
      uses = "git-clone"
      config = jsonencode({
        repoURL  = "$${{ vars.gitRepo }}"
        checkout = [{ branch = "main", path = "./src" }]
      })
    },
    {
      uses = "kustomize-set-image"
      as   = "update-image"
      config = jsonencode({
        path   = "./src/env/$${{ ctx.stage }}"
        images = [{ image = "$${{ vars.imageRepo }}", tag = "$${{ imageFrom(vars.imageRepo).Tag }}" }]
      })
    },
    {
      uses = "git-commit"
      as   = "commit"
      config = jsonencode({
        path    = "./src"
        message = "$${{ outputs['update-image'].commitMessage }}"
      })
    },
    {
      uses   = "git-push"
      config = jsonencode({ path = "./src" })
    },
    {
      uses = "argocd-update"
      config = jsonencode({
        apps = [{
          name    = "guestbook-$${{ ctx.stage }}"
          sources = [{ repoURL = "$${{ vars.gitRepo }}", desiredRevision = "$${{ outputs.commit.commit }}" }]
        }]
      })
    },
  ]

  promotion_vars = [
    { name = "gitRepo", value = "https://github.com/acme/guestbook-deploy.git" },
    { name = "imageRepo", value = "ghcr.io/acme/guestbook" },
  ]
}

# Development takes freight straight from the warehouse. With a promotion policy on the
# project (kargo_project.promotion_policies) Kargo promotes every new piece automatically.
resource "kargo_stage" "dev" {
  project = "guestbook"
  name    = "dev"

  requested_freight {
    origin { name = "guestbook" } # the warehouse
    sources { direct = true }
  }

  dynamic "vars" {
    for_each = local.promotion_vars
    content {
      name  = vars.value.name
      value = vars.value.value
    }
  }
  promotion_template {
    dynamic "steps" {
      for_each = local.promotion_steps
      content {
        uses   = steps.value.uses
        as     = lookup(steps.value, "as", null)
        config = steps.value.config
      }
    }
  }
}

# Staging takes only freight that has been in dev for an hour, and verifies each promotion
# with an Argo Rollouts analysis.
resource "kargo_stage" "staging" {
  project = "guestbook"
  name    = "staging"

  requested_freight {
    origin { name = "guestbook" }
    sources {
      stages             = [kargo_stage.dev.name]
      required_soak_time = "1h"
    }
  }

  dynamic "vars" {
    for_each = local.promotion_vars
    content {
      name  = vars.value.name
      value = vars.value.value
    }
  }
  promotion_template {
    dynamic "steps" {
      for_each = local.promotion_steps
      content {
        uses   = steps.value.uses
        as     = lookup(steps.value, "as", null)
        config = steps.value.config
      }
    }
  }

  verification {
    analysis_templates { name = "smoke-test" }
    args {
      name  = "url"
      value = "https://staging.guestbook.example.com"
    }
  }
}
