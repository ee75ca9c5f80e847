# A promotion process written once for the project's stages. A stage runs it with
# `promotion_template = { steps = [{ task = { name = "update-image" }, vars = [...] }] }`,
# supplying the variables that have no value here. Inside a task, earlier steps' outputs are
# `task.outputs['<alias>']`.
resource "kargo_promotion_task" "update_image" {
  project = "guestbook"
  name    = "update-image"

  vars = [
    { name = "gitRepo" },
    { name = "imageRepo" },
    { name = "branch", value = "main" },
  ]

  steps = [
    {
      uses = "git-clone"
      config = jsonencode({
        repoURL  = "$${{ vars.gitRepo }}"
        checkout = [{ branch = "$${{ vars.branch }}", path = "./src" }]
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
        message = "$${{ task.outputs['update-image'].commitMessage }}"
      })
    },
    {
      uses   = "git-push"
      config = jsonencode({ path = "./src" })
      # Pushing can race with other promotions; retry for up to five minutes.
      retry = { timeout = "5m" }
    },
    {
      uses = "argocd-update"
      config = jsonencode({
        apps = [{
          name    = "guestbook-$${{ ctx.stage }}"
          sources = [{ repoURL = "$${{ vars.gitRepo }}", desiredRevision = "$${{ task.outputs.commit.commit }}" }]
        }]
      })
    },
  ]
}
