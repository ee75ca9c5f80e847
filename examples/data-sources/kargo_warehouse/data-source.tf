# What the guestbook warehouse has discovered, and the freight it built last.
data "kargo_warehouse" "guestbook" {
  project = "guestbook"
  name    = "guestbook"
}

output "discovered_tags" {
  value = flatten([
    for image in try(data.kargo_warehouse.guestbook.discovered_artifacts.images, []) :
    [for ref in image.references : "${image.repo_url}:${ref.tag}"]
  ])
}

output "latest_freight" {
  value = try(data.kargo_warehouse.guestbook.latest_freight.alias, null)
}
