# A stage is imported by its project and name.
terraform import kargo_stage.dev guestbook/dev
