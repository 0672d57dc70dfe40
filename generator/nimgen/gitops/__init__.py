"""The GitOps tree: Argo CD objects built from what the components declare (`applications`), assembled into
files (`tree`, `charts`) and written (`writer`, with `ownership` records and the `repolock`)."""
