# A promotion task every project can use: it posts a message to a Slack channel. Stages run
# it from a step with a `task` block naming it, with `kind = "ClusterPromotionTask"`; the
# Slack token comes from a Secret named "slack" (key `token`) in the project's namespace.
resource "kargo_cluster_promotion_task" "notify_slack" {
  name = "notify-slack"

  vars {
    name  = "channel"
    value = "#deployments"
  }

  steps {
    uses = "http"
    as   = "post-message"
    config = jsonencode({
      method = "POST"
      url    = "https://slack.com/api/chat.postMessage"
      headers = [
        { name = "Authorization", value = "Bearer $${{ secret('slack').token }}" },
        { name = "Content-Type", value = "application/json" },
      ]
      body              = "$${{ quote({ channel: vars.channel, text: ctx.project + ': promoted ' + ctx.targetFreight.name + ' to ' + ctx.stage }) }}"
      successExpression = "response.status == 200 && response.body.ok == true"
    })
    # A failed notification should not fail the promotion.

    continue_on_error = true
  }
}
