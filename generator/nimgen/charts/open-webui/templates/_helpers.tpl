{{/*
Name of every object: the release name, cut at 63 characters (DNS-1123 label). nimgen installs one
Open WebUI per environment, so the release name is enough.
*/}}
{{- define "open-webui.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Chart name and version for the helm.sh/chart label ('+' is not allowed in label values).
*/}}
{{- define "open-webui.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels. Deployment selectors are immutable: only name and instance may ever go here.
*/}}
{{- define "open-webui.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "open-webui.labels" -}}
helm.sh/chart: {{ include "open-webui.chart" . | quote }}
{{ include "open-webui.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/component: chat
app.kubernetes.io/part-of: nimgen
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod template labels: no chart version, so a chart bump alone does not restart the pod.
*/}}
{{- define "open-webui.podLabels" -}}
{{ include "open-webui.selectorLabels" . }}
app.kubernetes.io/component: chat
app.kubernetes.io/part-of: nimgen
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Image reference repository[:tag][@digest]. Open WebUI publishes moving tags (main, latest, cuda): they are
refused, or the UI would change under a running deployment.
*/}}
{{- define "open-webui.image" -}}
{{- if has .Values.image.tag (list "latest" "main" "dev" "cuda" "ollama") }}
{{- fail (printf "image.tag '%s' moves with every Open WebUI release: pin a release (e.g. v0.7.2) or set image.digest" .Values.image.tag) }}
{{- end }}
{{- if and (not .Values.image.tag) (not .Values.image.digest) }}
{{- fail "set image.tag or image.digest: an unpinned image may differ after every reschedule" }}
{{- end }}
{{- .Values.image.repository }}
{{- with .Values.image.tag }}:{{ . }}{{ end }}
{{- with .Values.image.digest }}@{{ . }}{{ end }}
{{- end }}

{{/*
Pull policy: image.pullPolicy when set, else IfNotPresent for a digest and Always for a tag.
*/}}
{{- define "open-webui.imagePullPolicy" -}}
{{- if .Values.image.pullPolicy }}
{{- .Values.image.pullPolicy }}
{{- else if .Values.image.digest }}
{{- "IfNotPresent" }}
{{- else }}
{{- "Always" }}
{{- end }}
{{- end }}

{{/*
The environment variables for a Secret key. Optional keys let the pod start once the admin exists and
the credentials have been removed from the Secret.
*/}}
{{- define "open-webui.secretEnv" -}}
- name: {{ .name | quote }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret | quote }}
      key: {{ .name | quote }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}
