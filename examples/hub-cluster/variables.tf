variable "kubeconfig_path" {
  description = "Path to the kubeconfig that reaches the hub cluster."
  type        = string
  default     = "~/.kube/config"
}

variable "kubeconfig_context" {
  description = "Context of the hub cluster in that kubeconfig. Null uses its current context."
  type        = string
  default     = null
}

variable "addons" {
  description = <<-EOT
    Add-on switches for the hub cluster, e.g. { enable_argocd = true, enable_kargo = true }.
    Each flag becomes a label on Argo CD's cluster secret; the add-ons ApplicationSet installs
    the matching Helm chart on clusters that carry it.
  EOT
  type        = any
  default     = {}
}

variable "kargo_api_wait_timeout" {
  description = "How long an apply waits for Kargo to be served after `enable_kargo` is switched on (Argo CD has to sync the chart first)."
  type        = string
  default     = "15m"
}

variable "image_repository" {
  description = "Container image the pipeline promotes."
  type        = string
  default     = "ghcr.io/dokaseca/my-app"
}

variable "image_constraint" {
  description = "SemVer range of the image tags the warehouse turns into freight."
  type        = string
  default     = "^1.0.0"
}

variable "manifests_repo_url" {
  description = "Git repository holding the Kustomize overlays (apps/<app>/envs/<stage>) that promotions update."
  type        = string
  default     = "https://github.com/dokaseca/manifests.git"
}

variable "production_freight" {
  description = <<-EOT
    Alias of the freight that production should run, e.g. "wonky-wombat" (see the Kargo UI or
    `kubectl get freight -n my-app`). Setting it approves that freight for production and
    promotes it; changing it promotes the new one. Null leaves production alone.
  EOT
  type        = string
  default     = null
}
