# Shared ReadWriteMany model cache: nimgen's model-storage chart renders an efs-ap StorageClass on this file
# system (storage.modelCache.efs.fileSystemId = output efs_file_system_id), and each model downloads its
# weights once instead of once per replica.

resource "aws_kms_key" "efs" {
  description             = "EFS model cache of ${var.cluster_name}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = local.account_key_policy
}

resource "aws_kms_alias" "efs" {
  name          = "alias/${var.cluster_name}/efs"
  target_key_id = aws_kms_key.efs.key_id
}

resource "aws_efs_file_system" "model_cache" {
  creation_token = "${var.cluster_name}-model-cache"
  encrypted      = true
  kms_key_id     = aws_kms_key.efs.arn

  # Elastic throughput: what AWS recommends for ML (bursty, read-heavy loads of tens of GiB per model start)
  # without provisioning a fixed rate.
  performance_mode = "generalPurpose"
  throughput_mode  = "elastic"

  tags = {
    Name = "${var.cluster_name}-model-cache"
  }
}

# Enforce TLS for every NFS client (the EFS CSI driver mounts with encryptInTransit by default) and allow
# mounts only through the mount targets below.
data "aws_iam_policy_document" "model_cache" {
  statement {
    sid       = "MountThroughMountTargets"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite", "elasticfilesystem:ClientRootAccess"]
    resources = [aws_efs_file_system.model_cache.arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "elasticfilesystem:AccessedViaMountTarget"
      values   = ["true"]
    }
  }

  statement {
    sid       = "DenyUnencryptedTransport"
    effect    = "Deny"
    actions   = ["*"]
    resources = [aws_efs_file_system.model_cache.arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_efs_file_system_policy" "model_cache" {
  file_system_id = aws_efs_file_system.model_cache.id
  policy         = data.aws_iam_policy_document.model_cache.json
}

resource "aws_efs_mount_target" "model_cache" {
  for_each = { for index, az in var.availability_zones : az => module.vpc.private_subnets[index] }

  file_system_id  = aws_efs_file_system.model_cache.id
  subnet_id       = each.value
  security_groups = [aws_security_group.efs.id]
}

resource "aws_security_group" "efs" {
  name_prefix = "${var.cluster_name}-efs-"
  description = "NFS from the nodes of ${var.cluster_name} to the EFS model cache"
  vpc_id      = module.vpc.vpc_id

  tags = {
    Name = "${var.cluster_name}-efs"
  }

  lifecycle {
    create_before_destroy = true
  }
}

# From the shared node security group: the system node group and every node Karpenter launches carry it.
resource "aws_vpc_security_group_ingress_rule" "efs_nfs_from_nodes" {
  security_group_id            = aws_security_group.efs.id
  description                  = "NFS (TLS-wrapped by efs-utils) from EKS nodes"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = module.eks.node_security_group_id
}
