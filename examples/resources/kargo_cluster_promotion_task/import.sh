# A cluster promotion task is imported by its name.
terraform import kargo_cluster_promotion_task.notify_slack notify-slack
