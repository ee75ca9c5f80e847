# Kargo's quickstart pipeline (docs/docs/20-quickstart), written for Terraform: nginx images
# from a warehouse, a promotion task that renders each stage's manifests into its own branch
# and points Argo CD at the result, and three stages test → uat → prod.
#
# The Git credentials Secret of the quickstart is not part of the pipeline; it would come
# from the kubernetes provider's `kubernetes_secret`.

variable "gitops_repo_url" {
  description = "The GitOps repository the promotion task clones and pushes to."
  type        = string
}

resource "kargo_project" "demo" {
  name = "kargo-demo"
}

resource "kargo_warehouse" "demo" {
  project = kargo_project.demo.name
  name    = "kargo-demo"
  subscriptions {
    image {
      repo_url        = "public.ecr.aws/nginx/nginx"
      constraint      = "^1.29.0"
      discovery_limit = 5
    }
  }
}

resource "kargo_promotion_task" "promote" {
  project = kargo_project.demo.name
  name    = "demo-promo-process"
  vars {
    name  = "gitopsRepo"
    value = var.gitops_repo_url
  }
  vars {
    name  = "imageRepo"
    value = "public.ecr.aws/nginx/nginx"
  }
  steps {
    uses = "git-clone"
    config = jsonencode({
      repoURL = "$${{ vars.gitopsRepo }}"
      checkout = [
        { branch = "main", path = "./src" },
        { branch = "stage/$${{ ctx.stage }}", create = true, path = "./out" },
      ]
    })
  }
  steps {
    uses   = "git-clear"
    config = jsonencode({ path = "./out" })
  }
  steps {
    uses = "kustomize-set-image"
    as   = "update"
    config = jsonencode({
      path   = "./src/base"
      images = [{ image = "$${{ vars.imageRepo }}", tag = "$${{ imageFrom(vars.imageRepo).Tag }}" }]
    })
  }
  steps {
    uses   = "kustomize-build"
    config = jsonencode({ path = "./src/stages/$${{ ctx.stage }}", outPath = "./out" })
  }
  steps {
    uses   = "git-commit"
    as     = "commit"
    config = jsonencode({ path = "./out", message = "$${{ task.outputs.update.commitMessage }}" })
  }
  steps {
    uses   = "git-push"
    config = jsonencode({ path = "./out" })
  }
  steps {
    uses = "argocd-update"
    config = jsonencode({
      apps = [{
        name    = "kargo-demo-$${{ ctx.stage }}"
        sources = [{ repoURL = "$${{ vars.gitopsRepo }}", desiredRevision = "$${{ task.outputs.commit.commit }}" }]
      }]
    })
  }
}

resource "kargo_stage" "test" {
  project = kargo_project.demo.name
  name    = "test"
  requested_freight {
    origin { name = kargo_warehouse.demo.name }
    sources { direct = true }
  }
  promotion_template {
    steps {
      as = "promo-process"
      task { name = kargo_promotion_task.promote.name }
    }
  }
}

resource "kargo_stage" "uat" {
  project = kargo_project.demo.name
  name    = "uat"
  requested_freight {
    origin { name = kargo_warehouse.demo.name }
    sources { stages = [kargo_stage.test.name] }
  }
  promotion_template {
    steps {
      as = "promo-process"
      task { name = kargo_promotion_task.promote.name }
    }
  }
}

resource "kargo_stage" "prod" {
  project = kargo_project.demo.name
  name    = "prod"
  requested_freight {
    origin { name = kargo_warehouse.demo.name }
    sources { stages = [kargo_stage.uat.name] }
  }
  promotion_template {
    steps {
      as = "promo-process"
      task { name = kargo_promotion_task.promote.name }
    }
  }
}
