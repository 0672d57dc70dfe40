{{/*
Chart name.
*/}}
{{- define "nim-gateway.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of the Gateway and prefix of this release's objects.
*/}}
{{- define "nim-gateway.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Chart name and version for the helm.sh/chart label ('+' is not allowed in label values).
*/}}
{{- define "nim-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "nim-gateway.labels" -}}
helm.sh/chart: {{ include "nim-gateway.chart" . | quote }}
{{ include "nim-gateway.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/part-of: nimgen
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: never change them (a Deployment's selector is immutable).
*/}}
{{- define "nim-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nim-gateway.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{/*
The name in-cluster clients call the Envoy Service by: the in-cluster listener answers for it.
*/}}
{{- define "nim-gateway.inClusterHost" -}}
{{- printf "%s.%s.svc.cluster.local" .Values.proxy.serviceName .Values.proxy.namespace }}
{{- end }}

{{/*
The rate limiter's Redis: name and selector labels.
*/}}
{{- define "nim-gateway.redisName" -}}
{{- printf "%s-ratelimit-redis" (include "nim-gateway.fullname" . | trunc 47 | trimSuffix "-") }}
{{- end }}

{{- define "nim-gateway.redisSelectorLabels" -}}
{{ include "nim-gateway.selectorLabels" . }}
app.kubernetes.io/component: ratelimit-redis
{{- end }}

{{/*
A reference to one model's route (the HTTPRoute Envoy AI Gateway creates from the AIGatewayRoute of that name).
*/}}
{{- define "nim-gateway.routeRef" -}}
- group: gateway.networking.k8s.io
  kind: HTTPRoute
  name: {{ .name | quote }}
{{- end }}

{{/*
The token cost of a request: nothing when it arrives (the budget is only checked), its total tokens when the
response completes (Envoy AI Gateway writes them to this metadata).
*/}}
{{- define "nim-gateway.tokenCost" -}}
cost:
  request:
    from: Number
    number: 0
  response:
    from: Metadata
    metadata:
      namespace: io.envoy.ai_gateway
      key: llm_total_token
{{- end }}
