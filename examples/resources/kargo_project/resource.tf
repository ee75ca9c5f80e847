# A project with auto-promotion for its development stages, a webhook receiver that GitHub
# calls on every push (so warehouses look for new commits and GHCR images at once), and
# links Kargo's UI shows next to each piece of freight and each stage.
resource "kargo_project" "guestbook" {
  name = "guestbook"

  labels = {
    "app.kubernetes.io/part-of" = "guestbook"
  }

  promotion_policies {
    auto_promotion_enabled = true
    stage_selector { name = "glob:dev*" }
  }
  promotion_policies {
    auto_promotion_enabled = true
    stage_selector { match_labels = { tier = "staging" } }
  }

  # The receiver reads its token from the Secret "github-webhook" (data key `secret`) in the
  # project's namespace, created for example with the kubernetes provider's
  # kubernetes_secret. Register the URL below with GitHub, with that token as the secret.
  webhook_receivers {
    name = "github"
    github {
      secret_ref { name = "github-webhook" }
    }
  }

  # URLs are Go templates over the freight or stage; `if` is an expression deciding
  # whether the link is shown.
  freight_links {
    title       = "Release notes"
    url         = "https://github.com/acme/guestbook/releases/tag/{{ (index .freight.images 0).tag }}"
    description = "The release this freight's image was built from"
    if          = "len(freight.images) > 0"
  }
  stage_links {
    title = "Argo CD"
    url   = "https://argocd.example.com/applications/argocd/guestbook-{{ .stage.metadata.name }}"
  }

  timeouts {
    create = "5m"
    delete = "15m"
  }
}

output "github_webhook_url" {
  description = "The URL to register as the repository's webhook in GitHub."
  value       = kargo_project.guestbook.webhook_receiver_urls["github"]
  sensitive   = true
}
