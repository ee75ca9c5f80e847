# Kargo's "working with projects" guide: stages selected by exact name, regex and glob.

resource "kargo_project" "example" {
  name = "example"
  promotion_policies = [
    { stage_selector = { name = "prod-east" }, auto_promotion_enabled = false },
    { stage_selector = { name = "regex:test-.*" }, auto_promotion_enabled = true },
    { stage_selector = { name = "glob:dev-*" }, auto_promotion_enabled = true },
  ]
}
