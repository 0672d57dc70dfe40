################################################################################
# Environment and cluster
################################################################################

variable "environment" {
  description = "nimgen environment this cluster serves: the `name` of environments/<environment>.yaml, whose rendered argocd/<environment>/root.yaml Terraform applies. Also the Terraform workspace to apply it from."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.environment))
    error_message = "environment must be a DNS-1123 label (lower-case letters, digits and '-'), like nimgen's environment names."
  }
}

variable "cluster_name" {
  description = "EKS cluster name. Also the value of the `karpenter.sh/discovery` tag on the private subnets and the node security group, and part of the Karpenter node role name (KarpenterNodeRole-<cluster_name>)."
  type        = string

  validation {
    # 100 characters is the EKS limit; 38 keeps "KarpenterNodeRole-<name>" within IAM's 64-character role names.
    condition     = can(regex("^[a-zA-Z][-a-zA-Z0-9]{0,37}$", var.cluster_name))
    error_message = "cluster_name must start with a letter, use letters, digits and '-', and be at most 38 characters."
  }
}

variable "region" {
  description = "AWS region of the cluster and everything else this module creates."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region code such as us-west-2."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes <major>.<minor> version of the EKS control plane and the system node group. Keep it equal to cluster.kubernetesVersion in the environment file: nimgen validates manifests against that version."
  type        = string

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.33."
  }
}

variable "tags" {
  description = "Extra tags for every AWS resource (added to the provider's default tags)."
  type        = map(string)
  default     = {}
}

################################################################################
# Network
################################################################################

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC. Each zone gets a private subnet of 1/16 of it (nodes and pods: the VPC CNI gives every pod a VPC address) and small public and intra (control plane) subnets."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 18
    error_message = "vpc_cidr must be a valid IPv4 CIDR of /18 or larger (each private subnet gets 1/16 of it)."
  }
}

variable "availability_zones" {
  description = "Availability zones the subnets, and so the GPU nodes and the EFS mount targets, span. Named explicitly (not looked up) so the set never changes under the cluster; pick zones that offer the GPU instance types of the environment's node pools."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 4 && length(distinct(var.availability_zones)) == length(var.availability_zones)
    error_message = "availability_zones must list 2 (EKS needs two) to 4 distinct zones."
  }

  validation {
    condition     = alltrue([for az in var.availability_zones : startswith(az, var.region)])
    error_message = "availability_zones must be zones of var.region (for example us-west-2a)."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for the whole VPC (cheaper, one AZ is a single point of failure for egress) instead of one per AZ."
  type        = bool
  default     = false
}

variable "endpoint_public_access" {
  description = "Whether the EKS API server has a public endpoint. Terraform's helm and kubernetes providers need to reach the API, so turn this off only when Terraform runs inside the VPC (or through a VPN/peering)."
  type        = bool
  default     = true
}

variable "endpoint_public_access_cidrs" {
  description = "CIDR blocks allowed to reach the public API endpoint (IAM authentication still applies). Narrow this to your office/CI egress ranges."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for cidr in var.endpoint_public_access_cidrs : can(cidrhost(cidr, 0))])
    error_message = "endpoint_public_access_cidrs must contain IPv4 CIDR blocks."
  }
}

################################################################################
# System node group (Karpenter adds the GPU nodes nimgen's NodePools describe)
################################################################################

variable "system_node_instance_types" {
  description = "Instance types of the managed node group that runs everything but the models: CoreDNS, Karpenter, Argo CD, External Secrets and the platform Applications nimgen renders (Prometheus, KEDA, ...). GPU pools are Karpenter's."
  type        = list(string)
  default     = ["m6i.xlarge"]

  validation {
    condition     = length(var.system_node_instance_types) > 0
    error_message = "system_node_instance_types needs at least one instance type."
  }
}

variable "system_node_count" {
  description = "Size of the system node group: min, max and desired node count. Two or more keeps Karpenter's two replicas on separate nodes."
  type = object({
    min     = number
    max     = number
    desired = number
  })
  default = { min = 2, max = 4, desired = 2 }

  validation {
    condition     = var.system_node_count.min >= 1 && var.system_node_count.min <= var.system_node_count.desired && var.system_node_count.desired <= var.system_node_count.max
    error_message = "system_node_count must satisfy 1 <= min <= desired <= max."
  }
}

################################################################################
# NGC API key and External Secrets
################################################################################

variable "ngc_api_key" {
  description = "NVIDIA NGC API key (nvapi-...). Stored in Secrets Manager through a write-only argument, so it is in neither the plan nor the state. Never put it in a tfvars file: export TF_VAR_ngc_api_key at apply time."
  type        = string
  sensitive   = true
  ephemeral   = true

  validation {
    condition     = startswith(var.ngc_api_key, "nvapi-")
    error_message = "ngc_api_key must be an NGC personal or service API key, which starts with nvapi-."
  }
}

variable "ngc_api_key_version" {
  description = "Increment to write a new value of ngc_api_key to Secrets Manager (rotation). Terraform cannot see a write-only value change by itself."
  type        = number
  default     = 1

  validation {
    condition     = var.ngc_api_key_version >= 1 && floor(var.ngc_api_key_version) == var.ngc_api_key_version
    error_message = "ngc_api_key_version must be a positive integer."
  }
}

variable "platform_secrets_version" {
  description = "Increment to generate and write new values of Grafana's admin password and Open WebUI's session key and admin password to Secrets Manager (rotation)."
  type        = number
  default     = 1

  validation {
    condition     = var.platform_secrets_version >= 1 && floor(var.platform_secrets_version) == var.platform_secrets_version
    error_message = "platform_secrets_version must be a positive integer."
  }
}

variable "open_webui_admin_email" {
  description = "E-mail of the admin account Open WebUI creates on its first start (its password is generated into Secrets Manager)."
  type        = string
  default     = "admin@example.com"

  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.open_webui_admin_email))
    error_message = "open_webui_admin_email must be an e-mail address."
  }
}

variable "secret_recovery_window_days" {
  description = "Days Secrets Manager keeps a deleted secret of nimgen recoverable (0 deletes at once, so a re-created dev cluster can reuse the names)."
  type        = number
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or between 7 and 30."
  }
}

variable "cluster_secret_store_name" {
  description = "Name of the ClusterSecretStore nimgen renders (provider aws, service SecretsManager, this region, no auth block: the External Secrets controller's Pod Identity role is used). Terraform only outputs it for `nimgen import-terraform`."
  type        = string
  default     = "aws-secrets-manager"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.cluster_secret_store_name))
    error_message = "cluster_secret_store_name must be a DNS-1123 subdomain."
  }
}

variable "alerting_sns_topic_arns" {
  description = "SNS topics of the environment's SNS alert receivers (observability.alerting.receivers[].topicArn). Alertmanager may publish to these only; empty creates no role."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.alerting_sns_topic_arns : can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\\.fifo)?$", arn))])
    error_message = "alerting_sns_topic_arns holds SNS topic ARNs (arn:aws:sns:<region>:<account>:<topic>)."
  }
}

variable "alerting_sns_kms_key_arns" {
  description = "Customer-managed KMS keys of encrypted SNS alert topics: Alertmanager may encrypt with them (kms:GenerateDataKey*, kms:Decrypt)."
  type        = list(string)
  default     = []
}

variable "monitoring_namespace" {
  description = "Namespace of kube-prometheus-stack (observability.namespace of the environment file), where Alertmanager's ServiceAccount lives."
  type        = string
  default     = "monitoring"
}

variable "gateway_api_clients" {
  description = "Clients of the environment's model gateway, as its file names them (gateway.auth.apiKeys.clients). Terraform generates an API key for each into the Secrets Manager secret <cluster_name>/gateway-api-keys (output gateway_api_keys_secret_name); empty creates no secret."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for client in var.gateway_api_clients : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", client))])
    error_message = "gateway_api_clients holds DNS labels (lower-case letters, digits and -), as gateway.auth.apiKeys.clients does."
  }
}

variable "gateway_api_keys_version" {
  description = "Increment to generate and write new API keys for every gateway client (rotation, or after adding a client)."
  type        = number
  default     = 1

  validation {
    condition     = var.gateway_api_keys_version >= 1 && floor(var.gateway_api_keys_version) == var.gateway_api_keys_version
    error_message = "gateway_api_keys_version must be a positive integer."
  }
}

variable "alerting_secret_names" {
  description = "Secrets Manager secrets holding the Alertmanager receivers' URLs or keys, as the environment file names them (observability.alerting.receivers[].externalSecret): names or full ARNs. External Secrets may read these besides nimgen's own secrets; a receiver whose secret is missing here leaves its ExternalSecret failing and Alertmanager without its configuration."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([for name in var.alerting_secret_names :
    can(regex("^(arn:[^:]+:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+|[A-Za-z0-9/_+=.@-]{1,512})$", name))])
    error_message = "alerting_secret_names holds Secrets Manager secret names (letters, digits and /_+=.@-) or secret ARNs."
  }
}

################################################################################
# Argo CD and the GitOps repository
################################################################################

variable "argocd_namespace" {
  description = "Namespace Argo CD is installed in. Must equal gitops.namespace of the environment file (the namespace of the rendered root Application)."
  type        = string
  default     = "argocd"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.argocd_namespace))
    error_message = "argocd_namespace must be a DNS-1123 label."
  }
}

variable "gitops_repo_url" {
  description = "URL of the Git repository nimgen's rendered tree is committed to (gitops.repoURL of the environment file). Argo CD gets a repository Secret for it."
  type        = string

  validation {
    condition     = can(regex("^(https://|ssh://|git@)", var.gitops_repo_url))
    error_message = "gitops_repo_url must be an https://, ssh:// or git@ URL."
  }
}

variable "gitops_repo_username" {
  description = "User name for HTTPS access to a private GitOps repository (any non-empty value with a GitHub token). Null for a public repository."
  type        = string
  default     = null
}

variable "gitops_repo_password" {
  description = "Password or read-only access token for a private GitOps repository over HTTPS. Null for a public repository. Never put it in a tfvars file: export TF_VAR_gitops_repo_password at apply time."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = (var.gitops_repo_password == null) == (var.gitops_repo_username == null)
    error_message = "Set both gitops_repo_username and gitops_repo_password (private repository) or neither (public repository)."
  }
}
