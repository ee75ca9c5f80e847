# Kargo's "working with projects" guide: stages selected by exact name, regex and glob.

resource "kargo_project" "example" {
  name = "example"
  promotion_policies {
    auto_promotion_enabled = false
    stage_selector { name = "prod-east" }
  }
  promotion_policies {
    auto_promotion_enabled = true
    stage_selector { name = "regex:test-.*" }
  }
  promotion_policies {
    auto_promotion_enabled = true
    stage_selector { name = "glob:dev-*" }
  }
}
