# A project is imported by its name.
terraform import kargo_project.guestbook guestbook
