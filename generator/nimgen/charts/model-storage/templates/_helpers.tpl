{{/*
Chart name and version for the helm.sh/chart label ('+' is not allowed in label values).
*/}}
{{- define "model-storage.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "model-storage.labels" -}}
helm.sh/chart: {{ include "model-storage.chart" . | quote }}
app.kubernetes.io/name: {{ .Chart.Name | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/part-of: nimgen
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Cached models cost minutes to hours to download again: neither a prune nor deleting the
Application may remove a claim or its namespace.
*/}}
{{- define "model-storage.keep" -}}
argocd.argoproj.io/sync-options: Delete=false,Prune=false
helm.sh/resource-policy: keep
{{- end }}
