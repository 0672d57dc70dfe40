resource "helm_release" "argocd" {
  name             = "argo-cd"
  namespace        = var.argocd_namespace
  create_namespace = true
  repository       = "https://argoproj.github.io/argo-helm"
  chart            = "argo-cd"
  version          = local.chart_versions.argo_cd

  values = [file("${path.module}/values/argocd.yaml")]
}

# Argo CD reads repositories from Secrets labelled argocd.argoproj.io/secret-type=repository. Credentials
# come from variables (TF_VAR_gitops_repo_password at apply time), never from a tfvars file; for a public
# repository they stay null and the Secret only registers the URL.
resource "kubernetes_secret_v1" "gitops_repository" {
  metadata {
    name      = "nimgen-gitops-repository"
    namespace = var.argocd_namespace
    labels = {
      "argocd.argoproj.io/secret-type" = "repository"
      "app.kubernetes.io/part-of"      = "nimgen"
    }
  }

  data = merge(
    {
      type = "git"
      url  = var.gitops_repo_url
    },
    var.gitops_repo_username == null ? {} : {
      username = var.gitops_repo_username
      password = var.gitops_repo_password
    },
  )

  depends_on = [helm_release.argocd]
}

# The root Application and its AppProject are the ones nimgen renders, read from this repository's checkout
# rather than rebuilt from variables: argocd/<environment>/root.yaml (path argocd/<environment>/apps, only
# nimgen's files, automated prune and selfHeal, the retry policy) and root-project.yaml (AppProject
# <environment>-root: it may create only AppProjects and Applications in Argo CD's namespace) are the single
# definition, reviewed in Git with the rest of the tree; a re-render that changes them changes what the next
# apply installs. Argo CD never syncs the root project itself, so no commit can widen the root's rights.
# It goes through the argocd-apps chart, not a kubernetes_manifest: a kubernetes_manifest needs the
# Application CRD to exist at plan time, which on a new cluster it does not, whereas Helm resolves it at
# apply time, after the argo-cd release installed the CRDs.
locals {
  root_application_file = "${path.module}/../argocd/${var.environment}/root.yaml"
  root_application      = yamldecode(file(local.root_application_file))
  root_project_file     = "${path.module}/../argocd/${var.environment}/root-project.yaml"
  root_project          = yamldecode(file(local.root_project_file))
}

resource "helm_release" "root_application" {
  name       = "nimgen-root"
  namespace  = var.argocd_namespace
  repository = "https://argoproj.github.io/argo-helm"
  chart      = "argocd-apps"
  version    = local.chart_versions.argocd_apps

  # argocd-apps renders each entry of `projects` as an AppProject and each entry of `applications` as an
  # Application, named by their keys, with these fields.
  values = [yamlencode({
    projects = {
      (local.root_project.metadata.name) = {
        namespace                  = local.root_project.metadata.namespace
        additionalLabels           = try(local.root_project.metadata.labels, {})
        finalizers                 = try(local.root_project.metadata.finalizers, [])
        description                = local.root_project.spec.description
        sourceRepos                = local.root_project.spec.sourceRepos
        destinations               = local.root_project.spec.destinations
        clusterResourceWhitelist   = local.root_project.spec.clusterResourceWhitelist
        namespaceResourceWhitelist = local.root_project.spec.namespaceResourceWhitelist
      }
    }
    applications = {
      (local.root_application.metadata.name) = {
        namespace             = local.root_application.metadata.namespace
        additionalLabels      = try(local.root_application.metadata.labels, {})
        additionalAnnotations = try(local.root_application.metadata.annotations, {})
        finalizers            = try(local.root_application.metadata.finalizers, [])
        project               = local.root_application.spec.project
        source                = local.root_application.spec.source
        destination           = local.root_application.spec.destination
        syncPolicy            = local.root_application.spec.syncPolicy
      }
    }
  })]

  lifecycle {
    precondition {
      condition     = local.root_application.kind == "Application" && local.root_application.spec.source.path == "argocd/${var.environment}/apps"
      error_message = "${local.root_application_file} is not the root Application of environment '${var.environment}': run `nimgen render environments/${var.environment}.yaml`."
    }
    precondition {
      condition     = local.root_project.kind == "AppProject" && local.root_application.spec.project == local.root_project.metadata.name
      error_message = "${local.root_project_file} is not the AppProject of the root Application: run `nimgen render environments/${var.environment}.yaml`."
    }
    precondition {
      condition     = local.root_application.metadata.namespace == var.argocd_namespace
      error_message = "The root Application lives in namespace '${local.root_application.metadata.namespace}' (gitops.namespace) but argocd_namespace is '${var.argocd_namespace}'."
    }
    precondition {
      condition     = local.root_application.spec.source.repoURL == var.gitops_repo_url
      error_message = "The root Application reads ${local.root_application.spec.source.repoURL} (gitops.repoURL) but gitops_repo_url is ${var.gitops_repo_url}."
    }
  }

  # Everything the child Applications rely on is in place before the first sync: repository access, the
  # Karpenter CRDs for nimgen's NodePools, External Secrets for its ExternalSecrets, the EFS driver.
  depends_on = [
    helm_release.argocd,
    kubernetes_secret_v1.gitops_repository,
    helm_release.karpenter,
    helm_release.external_secrets,
    aws_efs_mount_target.model_cache,
  ]
}
