# The DoKa Seca RustFS add-on pipeline (thatmlopsguy/dokaseca-addons, kargo/rustfs), written
# for Terraform: new RustFS chart versions go dev → stg → prod by pull requests against the
# add-ons repository, then prod fans out to four regions that follow it independently.

locals {
  git_repo_url  = "https://github.com/thatmlopsguy/dokaseca-addons.git"
  chart_version = "$${{ chartFrom('https://charts.rustfs.com', 'rustfs', warehouse('rustfs-charts')).Version }}"
  open_pr       = "$${{ vars.openPR == 'true' }}"

  # The two promotion tasks differ only in the config file they edit and how they name
  # what they promote to.
  tasks = {
    "addon-version-promote" = {
      regional = false
      file     = "./out/configs/appsets/environments/$${{ ctx.stage }}/rustfs.json"
      target   = "$${{ ctx.stage }}"
      label    = "$${{ ctx.stage }}"
    }
    "addon-version-promote-region" = {
      regional = true
      file     = "./out/configs/appsets/regions/$${{ vars.region }}/rustfs.json"
      target   = "region: $${{ vars.region }}"
      label    = "$${{ vars.region }}"
    }
  }

  stages = {
    "dev"        = { upstream = null, color = "green", var = "environment", task = "addon-version-promote" }
    "stg"        = { upstream = "dev", color = "yellow", var = "environment", task = "addon-version-promote" }
    "prod"       = { upstream = "stg", color = "red", var = "environment", task = "addon-version-promote" }
    "prod-apac"  = { upstream = "prod", color = "red", var = "region", task = "addon-version-promote-region" }
    "prod-eu"    = { upstream = "prod", color = "red", var = "region", task = "addon-version-promote-region" }
    "prod-us"    = { upstream = "prod", color = "red", var = "region", task = "addon-version-promote-region" }
    "prod-local" = { upstream = "prod", color = "red", var = "region", task = "addon-version-promote-region" }
  }
}

resource "kargo_project" "rustfs" {
  name = "rustfs-addon"
  annotations = {
    "kargo.akuity.io/description" = "RustFS addon chart version promotion project"
  }
}

resource "kargo_warehouse" "rustfs" {
  project = kargo_project.rustfs.name
  name    = "rustfs-charts"
  # Watch the RustFS Helm chart for new versions.
  subscriptions {
    chart {
      repo_url = "https://charts.rustfs.com"
      name     = "rustfs"
    }
  }
}

resource "kargo_promotion_task" "rustfs" {
  for_each = local.tasks

  project = kargo_project.rustfs.name
  name    = each.key
  vars {
    name  = "gitRepoURL"
    value = local.git_repo_url
  }
  vars {
    name  = "openPR"
    value = "true"
  }
  # The regional task has one more variable, empty until a stage supplies it.
  dynamic "vars" {
    for_each = each.value.regional ? ["region"] : []
    content {
      name  = vars.value
      value = ""
    }
  }
  steps {
    uses = "git-clone"
    as   = "clone-repo"
    config = jsonencode({
      repoURL  = "$${{ vars.gitRepoURL }}"
      checkout = [{ branch = "main", path = "./out" }]
    })
  }
  steps {
    uses = "json-parse"
    as   = "current-version"
    config = jsonencode({
      path    = each.value.file
      outputs = [{ name = "addonChartVersion", fromExpression = "addonChartVersion" }]
    })
  }
  steps {
    uses = "json-update"
    as   = "update-settings"
    config = jsonencode({
      path    = each.value.file
      updates = [{ key = "addonChartVersion", value = local.chart_version }]
    })
  }
  steps {
    uses = "git-commit"
    as   = "commit"
    config = jsonencode({
      path    = "./out"
      message = "kargo: promote RustFS addon to ${local.chart_version} (${each.value.target})"
    })
  }
  steps {
    uses   = "git-push"
    as     = "push"
    if     = local.open_pr
    config = jsonencode({ path = "./out", generateTargetBranch = true })
  }
  steps {
    uses = "git-open-pr"
    as   = "open-pr"
    if   = local.open_pr
    config = jsonencode({
      repoURL      = "$${{ vars.gitRepoURL }}"
      provider     = "github"
      sourceBranch = "$${{ task.outputs['push'].branch }}"
      targetBranch = "main"
      title        = "kargo: promote RustFS addon to ${local.chart_version} (${each.value.target})"
      labels       = ["kargo", "addon-promotion", "rustfs", each.value.label]
    })
  }
  steps {
    uses = "git-wait-for-pr"
    as   = "wait-for-pr"
    if   = local.open_pr
    config = jsonencode({
      repoURL  = "$${{ vars.gitRepoURL }}"
      prNumber = "$${{ task.outputs['open-pr'].pr.id }}"
    })
  }
}

resource "kargo_stage" "rustfs" {
  for_each = local.stages

  project = kargo_project.rustfs.name
  name    = each.key
  annotations = {
    "kargo.akuity.io/color" = each.value.color
  }
  requested_freight {
    origin {
      kind = "Warehouse"
      name = kargo_warehouse.rustfs.name
    }
    sources {
      direct = each.value.upstream == null ? true : null
      stages = each.value.upstream == null ? null : [each.value.upstream]
    }
  }
  promotion_template {
    vars {
      name  = "openPR"
      value = "true"
    }
    # dev, stg and prod are environments; the prod-* stages are regions.
    vars {
      name  = each.value.var
      value = trimprefix(each.key, "prod-")
    }
    steps {
      task { name = kargo_promotion_task.rustfs[each.value.task].name }
    }
  }
}
