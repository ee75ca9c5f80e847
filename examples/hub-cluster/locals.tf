locals {
  # Add-on switches, read the same way for every add-on of the hub cluster.
  enable_argocd        = try(var.addons.enable_argocd, true)
  enable_argo_rollouts = try(var.addons.enable_argo_rollouts, false)
  enable_kargo         = try(var.addons.enable_kargo, false)

  # The labels GitOps Bridge puts on Argo CD's cluster secret. The add-ons ApplicationSet
  # installs the Kargo Helm chart (namespace `kargo`) where `enable_kargo` is "true".
  addon_labels = {
    enable_argocd        = tostring(local.enable_argocd)
    enable_argo_rollouts = tostring(local.enable_argo_rollouts)
    enable_kargo         = tostring(local.enable_kargo)
  }

  app = "my-app"

  # Only one pipeline object per type exists when Kargo is enabled; `count` switches them all.
  kargo_count = local.enable_kargo ? 1 : 0

  # A promotion to production is declared only when a freight is chosen for it.
  production_count = local.enable_kargo && var.production_freight != null ? 1 : 0
}
