# The quickstart pipeline: a project, an image warehouse, dev → staging, and a promotion
# into dev that follows the newest image matching a SemVer constraint. Each promotion
# copies the manifests of gitops/ (the main branch of var.gitops_repo_url) onto the
# stage's branch, sets the image tag there, commits and pushes.
# `make demo` applies it against the local sandbox, with gitops/ served as a repository.

terraform {
  required_version = ">= 1.5"
  required_providers {
    kargo = {
      source = "dokaseca/kargo"
    }
  }
}

variable "kubeconfig" {
  description = "Path to a kubeconfig for the hub cluster where Kargo runs."
  type        = string
  default     = "~/.kube/config"
}

variable "gitops_repo_url" {
  description = "Git repository holding the manifests of gitops/ on its main branch; promotions push to its stage/<stage> branches. Kargo needs write access to it."
  type        = string
  default     = "https://github.com/example/guestbook-gitops.git"
}

variable "dev_version" {
  description = "SemVer constraint for the image promoted into dev, e.g. \"^1.0.0\". Null promotes nothing."
  type        = string
  default     = null
}

variable "git_ca_file" {
  description = "PEM bundle of the CA behind the manifests repository's HTTPS server, when the system's CAs do not cover it (the local sandbox's own CA in `make demo`). Null: the system's CAs."
  type        = string
  default     = null
}

provider "kargo" {
  config_path = var.kubeconfig

  # The plan of a promotion previews the manifest change it will push: the provider fetches
  # the manifests repository and runs the stage's file steps on a scratch checkout.
  promotion_preview {
    ca_file = var.git_ca_file
  }
}

resource "kargo_project" "demo" {
  name = "kargo-demo"

  labels = {
    "app.kubernetes.io/part-of" = "kargo-demo"
  }

  # Promotions into dev are driven from this configuration, not by Kargo itself.
  promotion_policies {
    auto_promotion_enabled = false
    stage_selector { name = "glob:*" }
  }
}

resource "kargo_warehouse" "guestbook" {
  project = kargo_project.demo.name
  name    = "guestbook"
  subscriptions {
    image {
      repo_url   = "ghcr.io/akuity/guestbook"
      constraint = "^1.0.0"
    }
  }
}

resource "kargo_stage" "dev" {
  project = kargo_project.demo.name
  name    = "dev"
  requested_freight {
    origin { name = kargo_warehouse.guestbook.name }
    sources { direct = true }
  }
  promotion_template {
    steps {
      uses = "git-clone"
      config = jsonencode({
        repoURL  = var.gitops_repo_url
        checkout = [{ branch = "main", path = "./src" }, { branch = "stage/dev", create = true, path = "./out" }]
      })
    }
    steps {
      uses   = "git-clear"
      config = jsonencode({ path = "./out" })
    }
    steps {
      uses   = "copy"
      config = jsonencode({ inPath = "./src/base", outPath = "./out/base" })
    }
    steps {
      uses = "kustomize-set-image"
      as   = "set-image"
      config = jsonencode({
        path   = "./out/base"
        images = [{ image = "ghcr.io/akuity/guestbook", tag = "$${{ imageFrom(\"ghcr.io/akuity/guestbook\").Tag }}" }]
      })
    }
    steps {
      uses   = "git-commit"
      config = jsonencode({ path = "./out", message = "$${{ outputs[\"set-image\"].commitMessage }}" })
    }
    steps {
      uses   = "git-push"
      config = jsonencode({ path = "./out" })
    }
  }
}

resource "kargo_stage" "staging" {
  project = kargo_project.demo.name
  name    = "staging"
  requested_freight {
    origin { name = kargo_warehouse.guestbook.name }
    sources { stages = [kargo_stage.dev.name] }
  }
  promotion_template {
    steps {
      uses = "git-clone"
      config = jsonencode({
        repoURL  = var.gitops_repo_url
        checkout = [{ branch = "main", path = "./src" }, { branch = "stage/staging", create = true, path = "./out" }]
      })
    }
    steps {
      uses   = "git-clear"
      config = jsonencode({ path = "./out" })
    }
    steps {
      uses   = "copy"
      config = jsonencode({ inPath = "./src/base", outPath = "./out/base" })
    }
    steps {
      uses = "kustomize-set-image"
      as   = "set-image"
      config = jsonencode({
        path   = "./out/base"
        images = [{ image = "ghcr.io/akuity/guestbook", tag = "$${{ imageFrom(\"ghcr.io/akuity/guestbook\").Tag }}" }]
      })
    }
    steps {
      uses   = "git-commit"
      config = jsonencode({ path = "./out", message = "$${{ outputs[\"set-image\"].commitMessage }}" })
    }
    steps {
      uses   = "git-push"
      config = jsonencode({ path = "./out" })
    }
  }
}

# "dev should run the newest guestbook image matching var.dev_version." The plan resolves
# the freight and shows what the promotion changes; the apply promotes and waits.
resource "kargo_promotion" "dev" {
  count = var.dev_version == null ? 0 : 1

  project = kargo_project.demo.name
  stage   = kargo_stage.dev.name
  freight_selector {
    warehouse          = kargo_warehouse.guestbook.name
    version_constraint = var.dev_version
    image { repo_url = "ghcr.io/akuity/guestbook" }
  }
}

output "project_namespace" {
  description = "Namespace holding the project's warehouses, stages and freight."
  value       = kargo_project.demo.namespace
}

output "dev_promotion" {
  description = "What the promotion into dev changed."
  value = one([for p in kargo_promotion.dev : {
    freight   = p.freight_alias
    promotion = p.promotion_name
    phase     = p.phase
    changes   = p.changes
  }])
}
