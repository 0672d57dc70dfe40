# AWS Load Balancer Controller: it turns the gateway's Envoy Service (a LoadBalancer Service annotated
# aws-load-balancer-type: external, rendered by nimgen's nim-gateway chart) into a Network Load Balancer with IP
# targets. Without it that Service stays Pending and the gateway has no address. Its IAM policy comes from the
# terraform-aws-modules Pod Identity module (a superset of the controller's own docs/install/iam_policy.json at v3.5.0).

locals {
  lb_controller = {
    namespace       = "kube-system"
    service_account = "aws-load-balancer-controller"
  }
}

module "aws_lb_controller_pod_identity" {
  source  = "terraform-aws-modules/eks-pod-identity/aws"
  version = "2.8.1"

  name                            = "${var.cluster_name}-aws-lb-controller"
  attach_aws_lb_controller_policy = true

  associations = {
    controller = {
      cluster_name    = module.eks.cluster_name
      namespace       = local.lb_controller.namespace
      service_account = local.lb_controller.service_account
    }
  }

  tags = local.tags
}

resource "helm_release" "aws_load_balancer_controller" {
  name       = "aws-load-balancer-controller"
  namespace  = local.lb_controller.namespace
  repository = "https://aws.github.io/eks-charts"
  chart      = "aws-load-balancer-controller"
  version    = local.chart_versions.aws_load_balancer_controller

  values = [yamlencode({
    clusterName = module.eks.cluster_name
    region      = var.region
    vpcId       = module.vpc.vpc_id
    serviceAccount = {
      create = true
      name   = local.lb_controller.service_account
    }
  })]

  # Pods started before their Pod Identity association exists get no AWS credentials.
  depends_on = [module.aws_lb_controller_pod_identity]
}
