# The quickstart pipeline: one project on a Kargo hub cluster.
# `make demo` applies it against the local sandbox.

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

provider "kargo" {
  config_path = var.kubeconfig
}

resource "kargo_project" "demo" {
  name = "kargo-demo"

  labels = {
    "app.kubernetes.io/part-of" = "kargo-demo"
  }

  promotion_policies = [
    {
      stage_selector         = { name = "glob:*" }
      auto_promotion_enabled = false
    },
  ]
}

output "project_namespace" {
  description = "Namespace holding the project's warehouses, stages and freight."
  value       = kargo_project.demo.namespace
}
