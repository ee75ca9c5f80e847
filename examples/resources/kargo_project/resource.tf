# A project with an auto-promotion policy for its development stages.
resource "kargo_project" "guestbook" {
  name = "guestbook"

  labels = {
    "app.kubernetes.io/part-of" = "guestbook"
  }

  promotion_policies = [
    {
      stage_selector         = { name = "glob:dev*" }
      auto_promotion_enabled = true
    },
    {
      stage_selector         = { match_labels = { tier = "staging" } }
      auto_promotion_enabled = true
    },
  ]

  timeouts = {
    create = "5m"
    delete = "15m"
  }
}
