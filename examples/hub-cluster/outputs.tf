output "addon_labels" {
  description = "Labels for Argo CD's cluster secret (pass them to the GitOps Bridge module)."
  value       = local.addon_labels
}

output "kargo_project_namespace" {
  description = "Namespace that holds the pipeline's warehouses, stages and freight (null while Kargo is off)."
  value       = one(kargo_project.app[*].namespace)
}

output "kargo_stages" {
  description = "The stages of the pipeline, in promotion order."
  value       = local.enable_kargo ? [kargo_stage.dev[0].name, kargo_stage.staging[0].name, kargo_stage.production[0].name] : []
}
