{{/*
Chart name and version for the helm.sh/chart label ('+' is not allowed in label values).
*/}}
{{- define "ngc-secrets.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "ngc-secrets.labels" -}}
helm.sh/chart: {{ include "ngc-secrets.chart" . | quote }}
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
{{- define "ngc-secrets.remoteRef" -}}
key: {{ .Values.remote.key | quote }}
{{- with .Values.remote.property }}
property: {{ . | quote }}
{{- end }}
{{- end }}
