{{/*
Chart name and version for the helm.sh/chart label ('+' is not allowed in label values).
*/}}
{{- define "platform-secrets.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "platform-secrets.labels" -}}
helm.sh/chart: {{ include "platform-secrets.chart" . | quote }}
app.kubernetes.io/name: {{ .Chart.Name | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/part-of: nimgen
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The remote reference of the NGC API key.
*/}}
{{- define "platform-secrets.remoteRef" -}}
key: {{ .Values.ngc.remote.key | quote }}
{{- with .Values.ngc.remote.property }}
property: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Every namespace an ExternalSecret of this chart lives in (sorted, each once): the store admits only these.
*/}}
{{- define "platform-secrets.namespaces" -}}
{{- $namespaces := list }}
{{- if .Values.ngc.enabled }}
{{- $namespaces = concat $namespaces .Values.ngc.namespaces }}
{{- end }}
{{- range .Values.secrets }}
{{- $namespaces = append $namespaces .namespace }}
{{- end }}
{{- toYaml ($namespaces | uniq | sortAlpha) }}
{{- end }}
