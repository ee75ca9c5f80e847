# The provider talks to the Kubernetes API of the hub cluster, where Kargo runs.
#
# Nothing here contacts the cluster while planning new pipeline objects, so the first plan
# with `enable_kargo = true` works before Kargo's CRDs exist. At apply the provider waits
# (up to `api_wait_timeout`, logging its progress) for the `kargo.akuity.io` API that the
# add-on mechanism installs, then creates the pipeline: one apply turns Kargo and its
# pipeline on together.
provider "kargo" {
  config_path      = var.kubeconfig_path
  config_context   = var.kubeconfig_context
  api_wait_timeout = var.kargo_api_wait_timeout
}
