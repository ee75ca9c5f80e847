# Kargo's "working with projects" guide: auto-promotion for stages selected by their labels.

resource "kargo_project" "example" {
  name = "example"
  promotion_policies {
    auto_promotion_enabled = true
    stage_selector { match_labels = { environment = "development" } }
  }
  promotion_policies {
    auto_promotion_enabled = true
    stage_selector {
      match_expressions {
        key      = "environment"
        operator = "In"
        values   = ["development", "staging"]
      }
    }
  }
}
