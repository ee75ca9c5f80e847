# A promotion process written once for the project's stages. A stage runs it from a step of
# its promotion template, supplying the variables that have no value here:
#
#   steps {
#     task { name = "update-image" }
#     vars {
#       name  = "gitRepo"
#       value = "https://github.com/acme/guestbook-deploy.git"
#     }
#   }
#
# Inside a task, earlier steps' outputs are `task.outputs['<alias>']`.
resource "kargo_promotion_task" "update_image" {
  project = "guestbook"
  name    = "update-image"

  vars { name = "gitRepo" }
  vars { name = "imageRepo" }
  vars {
    name  = "branch"
    value = "main"
  }

  steps {
    uses = "git-clone"
    config = jsonencode({
      repoURL  = "$${{ vars.gitRepo }}"
      checkout = [{ branch = "$${{ vars.branch }}", path = "./src" }]
    })
  }
  steps {
    uses = "kustomize-set-image"
    as   = "update-image"
    config = jsonencode({
      path   = "./src/env/$${{ ctx.stage }}"
      images = [{ image = "$${{ vars.imageRepo }}", tag = "$${{ imageFrom(vars.imageRepo).Tag }}" }]
    })
  }
  steps {
    uses = "git-commit"
    as   = "commit"
    config = jsonencode({
      path    = "./src"
      message = "$${{ task.outputs['update-image'].commitMessage }}"
    })
  }
  steps {
    uses   = "git-push"
    config = jsonencode({ path = "./src" })
    # Pushing can race with other promotions; retry for up to five minutes.

    retry { timeout = "5m" }
  }
  steps {
    uses = "argocd-update"
    config = jsonencode({
      apps = [{
        name    = "guestbook-$${{ ctx.stage }}"
        sources = [{ repoURL = "$${{ vars.gitRepo }}", desiredRevision = "$${{ task.outputs.commit.commit }}" }]
      }]
    })
  }
}
