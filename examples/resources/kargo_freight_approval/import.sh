# An approval is imported by its project, stage and the freight's name (ID).
terraform import kargo_freight_approval.hotfix guestbook/staging/0f14b8f17c6486dd37bcf96df8b80784e1c2db0f
