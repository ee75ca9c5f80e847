terraform {
  required_providers {
    kargo = {
      source = "dokaseca/kargo"
    }
  }
}
