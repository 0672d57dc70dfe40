{{/*
Chart name, truncated to 63 characters because Kubernetes label values and DNS names stop there.
*/}}
{{- define "nim-llm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name of every object. A release name that already contains the chart name is used
as is; names are cut at 63 characters (DNS-1123 label limit).
*/}}
{{- define "nim-llm.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version for the helm.sh/chart label ('+' is not allowed in label values).
*/}}
{{- define "nim-llm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels. Selectors are immutable: nothing but name and instance may ever go here.
*/}}
{{- define "nim-llm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nim-llm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels shared by objects and pods (version follows the image tag, which names the NIM release).
*/}}
{{- define "nim-llm.commonLabels" -}}
{{ include "nim-llm.selectorLabels" . }}
{{- with .Values.image.tag }}
app.kubernetes.io/version: {{ . | trunc 63 | trimSuffix "-" | quote }}
{{- end }}
app.kubernetes.io/component: inference
app.kubernetes.io/part-of: nimgen
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "nim-llm.labels" -}}
helm.sh/chart: {{ include "nim-llm.chart" . }}
{{ include "nim-llm.commonLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Pod labels: no helm.sh/chart, so a chart version bump alone never restarts GPU pods.
*/}}
{{- define "nim-llm.podLabels" -}}
{{ include "nim-llm.commonLabels" . }}
{{- with .Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
ServiceAccount the pods run as.
*/}}
{{- define "nim-llm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nim-llm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference repo[:tag][@digest]. Refuses floating references: every node must run the same NIM.
*/}}
{{- define "nim-llm.image" -}}
{{- if eq .Values.image.tag "latest" }}
{{- fail "image.tag 'latest' floats between NIM releases; pin a released tag or set image.digest" }}
{{- end }}
{{- if and (not .Values.image.tag) (not .Values.image.digest) }}
{{- fail "set image.tag or image.digest: an unpinned NIM image may differ on every node" }}
{{- end }}
{{- .Values.image.repository }}
{{- with .Values.image.tag }}:{{ . }}{{ end }}
{{- with .Values.image.digest }}@{{ . }}{{ end }}
{{- end }}

{{/*
Headless Service that gives StatefulSet pods stable DNS names.
*/}}
{{- define "nim-llm.headlessServiceName" -}}
{{- printf "%s-headless" (include "nim-llm.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
GPU resource entry shared by requests and limits (extended resources must be equal in both).
*/}}
{{- define "nim-llm.gpuResource" -}}
{{ .Values.gpu.resourceName }}: {{ .Values.gpu.count | quote }}
{{- end }}
