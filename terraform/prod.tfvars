# Production cluster: environments/prod.yaml (cluster nim-prod). Secrets are not set here: export
# TF_VAR_ngc_api_key (and, for a private GitOps repository, TF_VAR_gitops_repo_username and
# TF_VAR_gitops_repo_password) before `terraform apply -var-file=prod.tfvars` in workspace `prod`.
environment        = "prod"
cluster_name       = "nim-prod"
region             = "us-west-2"
kubernetes_version = "1.33"

vpc_cidr                = "10.20.0.0/16"
availability_zones = ["us-west-2a", "us-west-2b", "us-west-2c"]
single_nat_gateway      = false

# Room for kube-prometheus-stack, prometheus-adapter, KEDA and Argo CD next to Karpenter.
system_node_instance_types = ["m6i.xlarge"]
system_node_count          = { min = 2, max = 5, desired = 3 }

secret_recovery_window_days = 30

gitops_repo_url = "https://github.com/example/nim-gitops.git"

# The model gateway's clients (environments/prod.yaml gateway.auth.apiKeys.clients): one API key each.
gateway_api_clients = ["chat-frontend", "batch-eval", "open-webui"]
