module "eks" {
  source  = "terraform-aws-modules/eks/aws"
  version = "21.17.0"

  name               = var.cluster_name
  kubernetes_version = var.kubernetes_version

  endpoint_public_access       = var.endpoint_public_access
  endpoint_public_access_cidrs = var.endpoint_public_access_cidrs

  # The identity running Terraform administers the cluster, so that it can install the Helm releases.
  enable_cluster_creator_admin_permissions = true

  vpc_id                   = module.vpc.vpc_id
  subnet_ids               = module.vpc.private_subnets
  control_plane_subnet_ids = module.vpc.intra_subnets

  addons = {
    coredns = {}
    kube-proxy = {}
    eks-pod-identity-agent = {
      before_compute = true
    }
    vpc-cni = {
      before_compute = true
      # nimgen renders NetworkPolicies; the VPC CNI enforces them only with its network policy agent on.
      configuration_values = jsonencode({
        enableNetworkPolicy = "true"
      })
    }
    # Provisions the encrypted gp3 volumes of nimgen's block-storage StorageClass (Open WebUI's data, per-replica
    # model caches): EKS clusters created on 1.30 or later have no default StorageClass and no EBS driver.
    aws-ebs-csi-driver = {
      pod_identity_association = [{
        role_arn        = aws_iam_role.ebs_csi.arn
        service_account = "ebs-csi-controller-sa"
      }]
    }
    # Mounts the shared EFS model cache (efs.tf); the controller creates one access point per claim.
    aws-efs-csi-driver = {
      pod_identity_association = [{
        role_arn        = aws_iam_role.efs_csi.arn
        service_account = "efs-csi-controller-sa"
      }]
    }
  }

  # Small on-demand group for everything but the models; GPU capacity comes from Karpenter.
  eks_managed_node_groups = {
    system = {
      ami_type       = "AL2023_x86_64_STANDARD"
      instance_types = var.system_node_instance_types

      min_size     = var.system_node_count.min
      max_size     = var.system_node_count.max
      desired_size = var.system_node_count.desired

      labels = {
        # Karpenter's controller runs here, never on nodes it manages itself (karpenter.tf).
        "karpenter.sh/controller" = "true"
      }
    }
  }

  # Karpenter attaches this security group to the nodes it launches (EC2NodeClass securityGroupSelectorTerms);
  # it is also the group the EFS mount targets accept NFS from.
  node_security_group_tags = {
    "karpenter.sh/discovery" = local.discovery_tag
  }

  tags = local.tags
}

################################################################################
# EKS Pod Identity: the trust policy of the add-on roles (EBS and EFS CSI drivers here, External Secrets in
# secrets.tf; Karpenter's role comes with its module)
################################################################################

data "aws_iam_policy_document" "pod_identity_trust" {
  statement {
    sid     = "EksPodIdentity"
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }

    # Only Pod Identity associations of this account's cluster may use the roles that trust this document.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [local.cluster_arn]
    }
  }
}

resource "aws_iam_role" "efs_csi" {
  name               = "${var.cluster_name}-efs-csi"
  description        = "EFS CSI driver controller of ${var.cluster_name} (EKS Pod Identity)"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_trust.json
}

resource "aws_iam_role" "ebs_csi" {
  name               = "${var.cluster_name}-ebs-csi"
  description        = "EBS CSI driver controller of ${var.cluster_name} (EKS Pod Identity)"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_trust.json
}

# Volumes are encrypted with the account's default EBS key (storage.blockStorage.kmsKeyId unset); a customer
# managed key would also need kms:CreateGrant for this role.
resource "aws_iam_role_policy_attachment" "ebs_csi" {
  role       = aws_iam_role.ebs_csi.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
}

resource "aws_iam_role_policy_attachment" "efs_csi" {
  role       = aws_iam_role.efs_csi.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonEFSCSIDriverPolicy"
}
