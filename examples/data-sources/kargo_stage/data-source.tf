# The image tag staging runs right now, for a release dashboard or another module.
data "kargo_stage" "staging" {
  project = "guestbook"
  name    = "staging"
}

output "staging_image_tag" {
  # Null until something has been promoted into the stage.
  value = try(data.kargo_stage.staging.current_freight.artifacts.images[0].tag, null)
}

output "staging_last_promotion" {
  value = try("${data.kargo_stage.staging.last_promotion.name}: ${data.kargo_stage.staging.last_promotion.phase}", "none yet")
}
