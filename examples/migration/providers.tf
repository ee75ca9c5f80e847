terraform {
  required_version = ">= 1.7"
  required_providers {
    kargo = {
      source = "dokaseca/kargo"
    }
  }
}
