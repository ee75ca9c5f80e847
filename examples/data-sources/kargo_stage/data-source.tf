# The image tag production runs right now, for a release dashboard or another module.
data "kargo_stage" "prod" {
  project = "guestbook"
  name    = "prod"
}

output "prod_image_tag" {
  # Null until something has been promoted into the stage.
  value = try(data.kargo_stage.prod.current_freight.artifacts.images[0].tag, null)
}

output "prod_last_promotion" {
  value = try("${data.kargo_stage.prod.last_promotion.name}: ${data.kargo_stage.prod.last_promotion.phase}", "none yet")
}
