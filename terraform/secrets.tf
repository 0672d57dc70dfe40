# The NGC API key lives in Secrets Manager, never in Git, Helm values or Terraform state: nimgen renders a
# ClusterSecretStore (cluster_secret_store_name) and ExternalSecrets that copy it into each model namespace
# as the Secrets the NIM pods read (ngc.apiKeySecret, ngc.imagePullSecret). Terraform installs the External
# Secrets Operator and gives it read access to this one secret.

resource "aws_kms_key" "secrets" {
  description             = "Secrets Manager secrets of ${var.cluster_name} (NGC API key)"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = local.account_key_policy
}

resource "aws_kms_alias" "secrets" {
  name          = "alias/${var.cluster_name}/secrets"
  target_key_id = aws_kms_key.secrets.key_id
}

resource "aws_secretsmanager_secret" "ngc_api_key" {
  name                    = "${var.cluster_name}/ngc-api-key"
  description             = "NVIDIA NGC API key for the NIM models of ${var.cluster_name}; read by External Secrets"
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

# Write-only: the value goes to AWS and nowhere else; bump ngc_api_key_version to write a new key.
resource "aws_secretsmanager_secret_version" "ngc_api_key" {
  secret_id                = aws_secretsmanager_secret.ngc_api_key.id
  secret_string_wo         = var.ngc_api_key
  secret_string_wo_version = var.ngc_api_key_version
}

################################################################################
# External Secrets Operator
################################################################################

locals {
  external_secrets = {
    namespace       = "external-secrets"
    service_account = "external-secrets"
  }
}

# Read the NGC secret, nothing else. kms:Decrypt is what GetSecretValue needs on a customer-managed key,
# and only through Secrets Manager.
data "aws_iam_policy_document" "external_secrets" {
  statement {
    sid       = "ReadNgcApiKey"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [aws_secretsmanager_secret.ngc_api_key.arn]
  }

  statement {
    sid       = "DecryptThroughSecretsManager"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.secrets.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "external_secrets" {
  name               = "${var.cluster_name}-external-secrets"
  description        = "External Secrets Operator of ${var.cluster_name}: reads the NGC API key (EKS Pod Identity)"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_trust.json
}

resource "aws_iam_role_policy" "external_secrets" {
  name   = "read-ngc-api-key"
  role   = aws_iam_role.external_secrets.id
  policy = data.aws_iam_policy_document.external_secrets.json
}

resource "aws_eks_pod_identity_association" "external_secrets" {
  cluster_name    = module.eks.cluster_name
  namespace       = local.external_secrets.namespace
  service_account = local.external_secrets.service_account
  role_arn        = aws_iam_role.external_secrets.arn
}

resource "helm_release" "external_secrets" {
  name             = "external-secrets"
  namespace        = local.external_secrets.namespace
  create_namespace = true
  repository       = "https://charts.external-secrets.io"
  chart            = "external-secrets"
  version          = local.chart_versions.external_secrets

  values = [yamlencode({
    installCRDs = true
    serviceAccount = {
      create = true
      name   = local.external_secrets.service_account
    }
  })]

  # Pods started before their Pod Identity association exists get no AWS credentials.
  depends_on = [aws_eks_pod_identity_association.external_secrets, aws_iam_role_policy.external_secrets]
}
