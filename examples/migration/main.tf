# The pipeline of kargo/*.yaml as typed resources. The `removed` blocks make Terraform
# forget the kubernetes_manifest resources without deleting anything in the cluster; the
# `import` blocks adopt the same objects. Apply once: the plan shows four imports and
# nothing else. Both kinds of block can be deleted after that apply.

resource "kargo_project" "guestbook" {
  name = "guestbook"

  labels = {
    "app.kubernetes.io/part-of" = "guestbook"
  }

  # The ProjectConfig (kargo/project-config.yaml) is part of the project resource.
  promotion_policies {
    auto_promotion_enabled = true
    stage_selector { name = "dev" }
  }
}

resource "kargo_warehouse" "guestbook" {
  project  = kargo_project.guestbook.name
  name     = "guestbook"
  interval = "5m"

  subscriptions {
    image {
      repo_url        = "ghcr.io/akuity/guestbook"
      constraint      = "^1.0.0"
      discovery_limit = 5
    }
  }
}

resource "kargo_promotion_task" "update_image" {
  project = kargo_project.guestbook.name
  name    = "update-image"

  vars {
    name  = "repoURL"
    value = "https://github.com/example/guestbook-deploy.git"
  }

  # Kargo expressions are written `$${{ ... }}` so that Terraform leaves them alone.
  steps {
    uses = "git-clone"
    config = jsonencode({
      repoURL  = "$${{ vars.repoURL }}"
      checkout = [{ branch = "main", path = "./src" }]
    })
  }
  steps {
    uses   = "kustomize-set-image"
    as     = "set-image"
    config = jsonencode({ path = "./src/env/$${{ ctx.stage }}" })
  }
  steps {
    uses = "git-commit"
    as   = "commit"
    config = jsonencode({
      path    = "./src"
      message = "$${{ task.outputs['set-image'].commitMessage }}"
    })
  }
  steps {
    uses   = "git-push"
    config = jsonencode({ path = "./src" })
  }
}

resource "kargo_stage" "dev" {
  project = kargo_project.guestbook.name
  name    = "dev"

  requested_freight {
    origin {
      kind = "Warehouse"
      name = kargo_warehouse.guestbook.name
    }
    sources { direct = true }
  }

  promotion_template {
    steps {
      task { name = kargo_promotion_task.update_image.name }
    }
  }
}

# Forget the old resources; the objects stay in the cluster.
removed {
  from = kubernetes_manifest.project
  lifecycle {
    destroy = false
  }
}

removed {
  from = kubernetes_manifest.project_config
  lifecycle {
    destroy = false
  }
}

removed {
  from = kubernetes_manifest.warehouse
  lifecycle {
    destroy = false
  }
}

removed {
  from = kubernetes_manifest.promotion_task
  lifecycle {
    destroy = false
  }
}

removed {
  from = kubernetes_manifest.stage_dev
  lifecycle {
    destroy = false
  }
}

# Adopt the same objects. IDs: a project by its name, namespaced objects as
# <project>/<name>.
import {
  to = kargo_project.guestbook
  id = "guestbook"
}

import {
  to = kargo_warehouse.guestbook
  id = "guestbook/guestbook"
}

import {
  to = kargo_promotion_task.update_image
  id = "guestbook/update-image"
}

import {
  to = kargo_stage.dev
  id = "guestbook/dev"
}
