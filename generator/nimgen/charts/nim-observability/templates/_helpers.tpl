{{/*
Chart name and version for the helm.sh/chart label ('+' is not allowed in label values).
*/}}
{{- define "nim-observability.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "nim-observability.labels" -}}
helm.sh/chart: {{ include "nim-observability.chart" . }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nimgen
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}
