# Versions of everything this root module pulls in, pinned in one file.
#
# Terraform >= 1.11: the NGC API key reaches Secrets Manager through the write-only argument
# `secret_string_wo` from an ephemeral variable (secrets.tf), so it is stored neither in the plan nor in
# the state. Write-only arguments need Terraform 1.11; ephemeral variables 1.10.

terraform {
  required_version = ">= 1.11"

  required_providers {
    # 6.x: required by terraform-aws-modules/eks 21.x and vpc 6.x; has `secret_string_wo`.
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    # 3.x: the `kubernetes = { ... }` attribute syntax used in providers.tf.
    helm = {
      source  = "hashicorp/helm"
      version = "~> 3.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.38"
    }
    # The ephemeral random_password (secrets.tf), generated at apply time and kept in neither plan nor state,
    # came with 3.7.1, the first 3.7 release (3.7.0 was only an alpha, which "~>" never selects).
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }
}

locals {
  # Helm charts, exact versions. Karpenter and External Secrets match the CRD schemas nimgen validates its
  # NodePools, EC2NodeClasses and ExternalSecrets against (../shared/crd-schemas: karpenter v1.14.1,
  # external-secrets v2.9.0). argo-cd 9.5.14 ships Argo CD v3.4.2.
  chart_versions = {
    karpenter        = "1.14.1" # oci://public.ecr.aws/karpenter/{karpenter,karpenter-crd}
    external_secrets = "2.9.0"  # https://charts.external-secrets.io
    argo_cd          = "9.5.14" # https://argoproj.github.io/argo-helm
    argocd_apps      = "2.0.2"  # https://argoproj.github.io/argo-helm (the root Application)
    # https://aws.github.io/eks-charts (controller v3.5.0)
    aws_load_balancer_controller = "3.5.0"
  }
}
