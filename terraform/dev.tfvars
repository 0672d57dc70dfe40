# Development cluster: environments/dev.yaml (cluster nim-dev). Secrets are not set here: export
# TF_VAR_ngc_api_key (and, for a private GitOps repository, TF_VAR_gitops_repo_username and
# TF_VAR_gitops_repo_password) before `terraform apply -var-file=dev.tfvars` in workspace `dev`.
environment        = "dev"
cluster_name       = "nim-dev"
region             = "us-west-2"
kubernetes_version = "1.33"

vpc_cidr                = "10.10.0.0/16"
availability_zones = ["us-west-2a", "us-west-2b"]
single_nat_gateway      = true

system_node_instance_types = ["m6i.large"]
system_node_count          = { min = 2, max = 3, desired = 2 }

# A throw-away cluster: let its NGC secret name be reused at once.
secret_recovery_window_days = 0

gitops_repo_url = "https://github.com/example/nim-gitops.git"
