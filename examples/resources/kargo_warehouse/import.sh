# A warehouse is imported by its project and name.
terraform import kargo_warehouse.guestbook guestbook/guestbook
