# Karpenter's AWS side: controller IAM role (with its Pod Identity association in kube-system/karpenter),
# the SQS interruption queue and its EventBridge rules, and the IAM role of the nodes it launches (with an
# EKS access entry so that they can join). The node role name is fixed, because nimgen's EC2NodeClass
# names it (cluster.karpenter.nodeRole = output karpenter_node_role).
module "karpenter" {
  source  = "terraform-aws-modules/eks/aws//modules/karpenter"
  version = "21.17.0"

  cluster_name = module.eks.cluster_name

  node_iam_role_use_name_prefix = false
  node_iam_role_name            = local.karpenter_node_role_name
  node_iam_role_additional_policies = {
    # Session Manager instead of SSH to debug a GPU node.
    AmazonSSMManagedInstanceCore = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
  }

  create_pod_identity_association = true
  namespace                       = local.karpenter.namespace
  service_account                 = local.karpenter.service_account

  tags = local.tags
}

locals {
  karpenter = {
    namespace       = "kube-system"
    service_account = "karpenter"
  }
}

# CRDs in their own release: Helm installs a chart's crds/ once and never upgrades them, the karpenter-crd
# chart keeps them current with the controller (Karpenter's documented upgrade path).
resource "helm_release" "karpenter_crd" {
  name       = "karpenter-crd"
  namespace  = local.karpenter.namespace
  repository = "oci://public.ecr.aws/karpenter"
  chart      = "karpenter-crd"
  version    = local.chart_versions.karpenter
}

resource "helm_release" "karpenter" {
  name       = "karpenter"
  namespace  = local.karpenter.namespace
  repository = "oci://public.ecr.aws/karpenter"
  chart      = "karpenter"
  version    = local.chart_versions.karpenter
  skip_crds  = true

  values = [yamlencode({
    settings = {
      clusterName       = module.eks.cluster_name
      clusterEndpoint   = module.eks.cluster_endpoint
      interruptionQueue = module.karpenter.queue_name
    }
    serviceAccount = {
      name = local.karpenter.service_account
    }
    # On the system node group: a controller on a node it manages could consolidate itself away.
    nodeSelector = {
      "karpenter.sh/controller" = "true"
    }
    # CoreDNS may itself wait for capacity Karpenter has to launch.
    dnsPolicy = "Default"
    controller = {
      resources = {
        requests = { cpu = "500m", memory = "1Gi" }
        limits   = { memory = "1Gi" }
      }
    }
  })]

  # The Pod Identity association must exist before the controller pods start, or they get no credentials.
  depends_on = [helm_release.karpenter_crd, module.karpenter]
}
