# Connect through a kubeconfig context of the cluster Kargo runs in.
terraform {
  required_providers {
    kargo = {
      source = "dokaseca/kargo"
    }
  }
}

provider "kargo" {
  config_path    = "~/.kube/config"
  config_context = "hub"
}
