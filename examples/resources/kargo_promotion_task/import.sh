# A promotion task is imported by its project and name.
terraform import kargo_promotion_task.update_image guestbook/update-image
