# Only the kargo provider is declared here. The rest of the hub-cluster configuration
# (the cluster, Argo CD, GitOps Bridge, Helm) brings its own providers; see README.md for
# how the Kargo chart itself gets installed when `enable_kargo` is switched on.
terraform {
  required_version = ">= 1.5"

  required_providers {
    kargo = {
      source = "dokaseca/kargo"
    }
  }
}
