# Kargo's "working with projects" guide: auto-promotion for two stages named exactly.

resource "kargo_project" "example" {
  name = "example"
  promotion_policies {
    auto_promotion_enabled = true
    stage_selector { name = "test" }
  }
  promotion_policies {
    auto_promotion_enabled = true
    stage_selector { name = "uat" }
  }
}
