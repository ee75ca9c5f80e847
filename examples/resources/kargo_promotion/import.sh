# A promotion is imported by its project and the name Kargo gave the Promotion.
terraform import kargo_promotion.dev guestbook/dev.01j9z8v6q5k3m2n1p0r7s4t6w8.3f2a1b9
