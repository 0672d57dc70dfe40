# Alertmanager's SNS receivers (observability.alerting.receivers[] of type sns) publish with Alertmanager's own
# AWS identity: EKS Pod Identity gives its ServiceAccount a role that may publish to the listed topics only. Its
# SDK (aws-sdk-go-v2 in Alertmanager v0.29) finds those credentials in its default chain; nimgen sets no key.

locals {
  alertmanager = {
    namespace       = var.monitoring_namespace
    service_account = "kube-prometheus-stack-alertmanager" # nimgen's alertmanager.serviceAccount.name
  }
}

data "aws_iam_policy_document" "alertmanager_sns" {
  count = length(var.alerting_sns_topic_arns) > 0 ? 1 : 0

  statement {
    sid       = "PublishAlerts"
    actions   = ["sns:Publish"]
    resources = var.alerting_sns_topic_arns
  }

  # A topic encrypted with a customer-managed key needs these on the key as well.
  dynamic "statement" {
    for_each = length(var.alerting_sns_kms_key_arns) > 0 ? [1] : []
    content {
      sid       = "EncryptForEncryptedTopics"
      actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
      resources = var.alerting_sns_kms_key_arns
    }
  }
}

resource "aws_iam_role" "alertmanager" {
  count              = length(var.alerting_sns_topic_arns) > 0 ? 1 : 0
  name               = "${var.cluster_name}-alertmanager"
  description        = "Alertmanager of ${var.cluster_name}: publishes alerts to its SNS receivers' topics (EKS Pod Identity)"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_trust.json
}

resource "aws_iam_role_policy" "alertmanager_sns" {
  count  = length(var.alerting_sns_topic_arns) > 0 ? 1 : 0
  name   = "publish-alerts"
  role   = aws_iam_role.alertmanager[0].id
  policy = data.aws_iam_policy_document.alertmanager_sns[0].json
}

resource "aws_eks_pod_identity_association" "alertmanager" {
  count           = length(var.alerting_sns_topic_arns) > 0 ? 1 : 0
  cluster_name    = module.eks.cluster_name
  namespace       = local.alertmanager.namespace
  service_account = local.alertmanager.service_account
  role_arn        = aws_iam_role.alertmanager[0].arn
}
