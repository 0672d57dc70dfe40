{{/*
Chart name and version for the helm.sh/chart label ('+' is not allowed in label values).
*/}}
{{- define "block-storage.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "block-storage.labels" -}}
helm.sh/chart: {{ include "block-storage.chart" . | quote }}
app.kubernetes.io/name: {{ .Chart.Name | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/part-of: nimgen
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}
