# The NGC API key, Grafana's admin and Open WebUI's key live in Secrets Manager, never in Git, Helm values or
# Terraform state: nimgen renders a ClusterSecretStore (cluster_secret_store_name) and ExternalSecrets that copy
# them into the Secrets the pods read (ngc.externalSecret, observability.grafanaAdminExternalSecret,
# addons.openWebUI.externalSecret). Terraform installs the External Secrets Operator and gives it read access
# to these secrets only.

resource "aws_kms_key" "secrets" {
  description             = "Secrets Manager secrets of ${var.cluster_name} (NGC API key, Grafana and Open WebUI)"
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

# Grafana's admin and Open WebUI's session key and first admin: generated at apply time by ephemeral
# random_passwords and written write-only, so Terraform keeps them in neither plan nor state. Read them in
# Secrets Manager; bump platform_secrets_version to write new ones.
ephemeral "random_password" "grafana_admin" {
  length  = 32
  special = false
}

ephemeral "random_password" "open_webui_admin" {
  length  = 32
  special = false
}

ephemeral "random_password" "open_webui_session_key" {
  length  = 64
  special = false
}

resource "aws_secretsmanager_secret" "grafana_admin" {
  name                    = "${var.cluster_name}/grafana-admin"
  description             = "Grafana admin of ${var.cluster_name} (JSON: admin-user, admin-password); read by External Secrets"
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "grafana_admin" {
  secret_id = aws_secretsmanager_secret.grafana_admin.id
  secret_string_wo = jsonencode({
    "admin-user"     = "admin"
    "admin-password" = ephemeral.random_password.grafana_admin.result
  })
  secret_string_wo_version = var.platform_secrets_version
}

resource "aws_secretsmanager_secret" "open_webui" {
  name                    = "${var.cluster_name}/open-webui"
  description             = "Open WebUI of ${var.cluster_name} (JSON: WEBUI_SECRET_KEY, WEBUI_ADMIN_EMAIL, WEBUI_ADMIN_PASSWORD); read by External Secrets"
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "open_webui" {
  secret_id = aws_secretsmanager_secret.open_webui.id
  secret_string_wo = jsonencode({
    WEBUI_SECRET_KEY     = ephemeral.random_password.open_webui_session_key.result
    WEBUI_ADMIN_EMAIL    = var.open_webui_admin_email
    WEBUI_ADMIN_PASSWORD = ephemeral.random_password.open_webui_admin.result
  })
  secret_string_wo_version = var.platform_secrets_version
}

# The gateway's API keys (gateway.auth.apiKeys): one per client, generated at apply time like the passwords
# above and written write-only. Read a client's key in Secrets Manager and hand it over; bump
# gateway_api_keys_version to generate and write new keys for every client (a rotation, or a new client).
ephemeral "random_password" "gateway_api_key" {
  for_each = toset(var.gateway_api_clients)
  length   = 48
  special  = false
}

resource "aws_secretsmanager_secret" "gateway_api_keys" {
  count                   = length(var.gateway_api_clients) > 0 ? 1 : 0
  name                    = "${var.cluster_name}/gateway-api-keys"
  description             = "API keys of the clients of ${var.cluster_name}'s model gateway (JSON: client -> key); read by External Secrets"
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "gateway_api_keys" {
  count     = length(var.gateway_api_clients) > 0 ? 1 : 0
  secret_id = aws_secretsmanager_secret.gateway_api_keys[0].id
  secret_string_wo = jsonencode({
    for client in var.gateway_api_clients : client => ephemeral.random_password.gateway_api_key[client].result
  })
  secret_string_wo_version = var.gateway_api_keys_version
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

# Read nimgen's secrets, nothing else. kms:Decrypt is what GetSecretValue needs on a customer-managed key,
# and only through Secrets Manager.
data "aws_iam_policy_document" "external_secrets" {
  statement {
    sid     = "ReadNimgenSecrets"
    actions = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = concat([
      aws_secretsmanager_secret.ngc_api_key.arn,
      aws_secretsmanager_secret.grafana_admin.arn,
      aws_secretsmanager_secret.open_webui.arn,
    ], aws_secretsmanager_secret.gateway_api_keys[*].arn)
  }

  # The alert receivers' secrets are the team's own (a Slack webhook, a PagerDuty key): named in the
  # environment file and listed here. A secret's ARN ends in "-" and six random characters.
  dynamic "statement" {
    for_each = length(var.alerting_secret_names) > 0 ? [1] : []
    content {
      sid     = "ReadAlertReceiverSecrets"
      actions = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      resources = [for name in var.alerting_secret_names :
        startswith(name, "arn:") ? name : "arn:${data.aws_partition.current.partition}:secretsmanager:${var.region}:${data.aws_caller_identity.current.account_id}:secret:${name}-??????"
      ]
    }
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
  description        = "External Secrets Operator of ${var.cluster_name}: reads nimgen's secrets (EKS Pod Identity)"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_trust.json
}

resource "aws_iam_role_policy" "external_secrets" {
  name   = "read-nimgen-secrets"
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
