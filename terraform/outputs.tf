################################################################################
# The contract with nimgen: `nimgen import-terraform outputs.json environments/<env>.yaml` reads exactly
# these outputs (nimgen.terraform.OUTPUTS; tests/test_terraform.py holds both sides to it).
################################################################################

output "cluster_name" {
  description = "EKS cluster name (cluster.name)."
  value       = module.eks.cluster_name
}

output "region" {
  description = "AWS region of the cluster (cluster.region)."
  value       = var.region
}

output "kubernetes_version" {
  description = "Kubernetes <major>.<minor> version of the control plane (cluster.kubernetesVersion)."
  value       = module.eks.cluster_version
}

output "karpenter_node_role" {
  description = "IAM role of the nodes Karpenter launches; the EC2NodeClass spec.role (cluster.karpenter.nodeRole)."
  value       = module.karpenter.node_iam_role_name
}

output "karpenter_discovery_tag" {
  description = "Value of the karpenter.sh/discovery tag on the private subnets and the node security group (cluster.karpenter.discoveryTag)."
  value       = local.discovery_tag
}

output "efs_file_system_id" {
  description = "EFS file system of the shared model cache (storage.modelCache.efs.fileSystemId)."
  value       = aws_efs_file_system.model_cache.id
}

output "ngc_api_key_secret_name" {
  description = "Secrets Manager secret holding the NGC API key, the remote key of nimgen's ExternalSecrets (ngc.externalSecret.key)."
  value       = aws_secretsmanager_secret.ngc_api_key.name
}

output "grafana_admin_secret_name" {
  description = "Secrets Manager secret holding Grafana's admin (observability.grafanaAdminExternalSecret)."
  value       = aws_secretsmanager_secret.grafana_admin.name
}

output "open_webui_secret_name" {
  description = "Secrets Manager secret holding Open WebUI's session key and first admin (addons.openWebUI.externalSecret)."
  value       = aws_secretsmanager_secret.open_webui.name
}

output "gateway_api_keys_secret_name" {
  description = "Secrets Manager secret holding the gateway clients' API keys (gateway.auth.apiKeys.externalSecret); null without gateway_api_clients."
  value       = one(aws_secretsmanager_secret.gateway_api_keys[*].name)
}

output "cluster_secret_store_name" {
  description = "Name of the ClusterSecretStore nimgen renders for AWS Secrets Manager (ngc.externalSecret.store)."
  value       = var.cluster_secret_store_name
}

################################################################################
# For people and scripts
################################################################################

output "configure_kubectl" {
  description = "Command that points kubectl at the cluster."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${module.eks.cluster_name}"
}

output "cluster_endpoint" {
  description = "Endpoint of the Kubernetes API server."
  value       = module.eks.cluster_endpoint
}

output "vpc_id" {
  description = "VPC of the cluster."
  value       = module.vpc.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets (tagged for Karpenter discovery) the nodes and the EFS mount targets are in."
  value       = module.vpc.private_subnets
}

output "node_security_group_id" {
  description = "Shared node security group (tagged for Karpenter discovery)."
  value       = module.eks.node_security_group_id
}

output "karpenter_interruption_queue_name" {
  description = "SQS queue Karpenter reads Spot interruption and instance health events from."
  value       = module.karpenter.queue_name
}

output "ngc_api_key_secret_arn" {
  description = "ARN of the NGC API key secret."
  value       = aws_secretsmanager_secret.ngc_api_key.arn
}

output "external_secrets_role_arn" {
  description = "IAM role of the External Secrets Operator (EKS Pod Identity): reads the NGC API key secret only."
  value       = aws_iam_role.external_secrets.arn
}

output "efs_csi_driver_role_arn" {
  description = "IAM role of the EFS CSI driver controller (EKS Pod Identity)."
  value       = aws_iam_role.efs_csi.arn
}

output "argocd_namespace" {
  description = "Namespace Argo CD runs in."
  value       = var.argocd_namespace
}

output "root_application" {
  description = "Name of the root Application Terraform installed from argocd/<environment>/root.yaml."
  value       = local.root_application.metadata.name
}
