{{/*
Chart name, truncated to 63 characters (label value limit).
*/}}
{{- define "gpu-nodepools.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Chart name and version for the helm.sh/chart label ('+' is not allowed in label values).
*/}}
{{- define "gpu-nodepools.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object. Objects are named after their pool, so the release only shows up in labels.
*/}}
{{- define "gpu-nodepools.labels" -}}
helm.sh/chart: {{ include "gpu-nodepools.chart" . | quote }}
app.kubernetes.io/name: {{ include "gpu-nodepools.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/part-of: nimgen
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Both EC2NodeClass fields below are required by Karpenter; fail early instead of at admission.
*/}}
{{- define "gpu-nodepools.requireCluster" -}}
{{- if not .Values.karpenter.nodeRole }}
{{- fail "karpenter.nodeRole is required: the IAM role Karpenter's nodes run with" }}
{{- end }}
{{- if not .Values.karpenter.discoveryTag }}
{{- fail "karpenter.discoveryTag is required: subnets and security groups are found by the karpenter.sh/discovery tag" }}
{{- end }}
{{- end }}
