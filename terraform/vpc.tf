module "vpc" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "6.5.1"

  name = var.cluster_name
  cidr = var.vpc_cidr
  azs  = var.availability_zones

  # Private subnets hold the nodes and pods (the VPC CNI gives every pod a VPC address, hence 1/16 of the
  # VPC each: a /20 of a /16), public subnets only NAT gateways and internet-facing load balancers, intra
  # subnets the EKS control-plane network interfaces. With up to 4 zones the private subnets fill the first
  # quarter of the VPC and the small subnets start right after it.
  private_subnets = [for index, az in var.availability_zones : cidrsubnet(var.vpc_cidr, 4, index)]
  public_subnets  = [for index, az in var.availability_zones : cidrsubnet(var.vpc_cidr, 8, index + 64)]
  intra_subnets   = [for index, az in var.availability_zones : cidrsubnet(var.vpc_cidr, 8, index + 68)]

  enable_nat_gateway = true
  single_nat_gateway = var.single_nat_gateway

  public_subnet_tags = {
    "kubernetes.io/role/elb" = 1
  }

  private_subnet_tags = {
    "kubernetes.io/role/internal-elb" = 1
    # Karpenter launches GPU nodes into the subnets carrying this tag (EC2NodeClass subnetSelectorTerms).
    "karpenter.sh/discovery" = local.discovery_tag
  }

  enable_flow_log                                 = true
  create_flow_log_cloudwatch_log_group            = true
  create_flow_log_cloudwatch_iam_role             = true
  flow_log_cloudwatch_log_group_retention_in_days = 90

  tags = local.tags
}
