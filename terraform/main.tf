data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  # Karpenter finds subnets and security groups by this tag (EC2NodeClass selector terms nimgen renders
  # from cluster.karpenter.discoveryTag).
  discovery_tag = var.cluster_name

  # Predictable so that nimgen's EC2NodeClass `spec.role` (cluster.karpenter.nodeRole) can name it.
  karpenter_node_role_name = "KarpenterNodeRole-${var.cluster_name}"

  # The cluster's ARN built from its name, so that IAM trust policies can pin it without depending on the
  # cluster resource.
  cluster_arn = "arn:${data.aws_partition.current.partition}:eks:${var.region}:${data.aws_caller_identity.current.account_id}:cluster/${var.cluster_name}"

  # Policy of the customer-managed KMS keys (efs.tf, secrets.tf): the default key policy, under which IAM
  # policies of this account decide who may use the key. In a key policy "Resource": "*" means the key
  # itself, so it is written as a key policy here rather than as an aws_iam_policy_document.
  account_key_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministersKeyThroughIam"
      Effect    = "Allow"
      Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })

  tags = merge(var.tags, {
    "nimgen.io/environment" = var.environment
    "nimgen.io/cluster"     = var.cluster_name
    ManagedBy               = "terraform"
  })
}

# One root module serves every environment: each has its own workspace (and so its own state), and this
# guard refuses `-var-file=prod.tfvars` in any workspace but `prod`, so that applying one environment's
# variables can never replace another environment's cluster.
resource "terraform_data" "workspace_guard" {
  input = var.environment

  lifecycle {
    precondition {
      condition     = terraform.workspace == var.environment
      error_message = "Run `terraform workspace select -or-create ${var.environment}` first: the current workspace '${terraform.workspace}' does not match environment '${var.environment}'."
    }
  }
}
