{{/*
Chart name (or nameOverride), cut at 63 characters: label values and DNS labels stop there.
*/}}
{{- define "nim-llm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of every object. A release name that already contains the chart name is used as is, so
`helm template nim-llm .` does not give `nim-llm-nim-llm`; cut at 63 characters (DNS-1123 label).
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
Chart name and version for the helm.sh/chart label: a label value cannot hold '+'.
*/}}
{{- define "nim-llm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Label keys the chart owns. commonLabels and podLabels may not set them: a different name or
instance would detach pods from their selector, the others would lie about what rendered the object.
*/}}
{{- define "nim-llm.reservedLabels" -}}
{{- list "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "app.kubernetes.io/component" "app.kubernetes.io/part-of" | toJson }}
{{- end }}

{{/*
Labels of every object: selector labels, the NIM version, the component and the caller's commonLabels.
*/}}
{{- define "nim-llm.labels" -}}
{{ include "nim-llm.componentLabels" (dict "root" . "component" "inference") }}
{{- end }}

{{/*
The same labels for another component of the release (e.g. the cache warm-up Job).
*/}}
{{- define "nim-llm.componentLabels" -}}
{{- $component := .component }}
{{- with .root }}
helm.sh/chart: {{ include "nim-llm.chart" . | quote }}
{{ include "nim-llm.selectorLabels" . }}
{{- with .Values.image.tag }}
app.kubernetes.io/version: {{ . | trunc 63 | trimSuffix "-" | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/component: {{ $component | quote }}
app.kubernetes.io/part-of: nimgen
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Selector labels. Workload selectors are immutable: only name and instance may ever go here, or an
upgrade would need the StatefulSet or Deployment deleted and recreated.
*/}}
{{- define "nim-llm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nim-llm.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{/*
Pod template labels. No helm.sh/chart and no managed-by: a chart version bump alone must not change
the pod template, or every GPU pod would restart and download its model again.
*/}}
{{- define "nim-llm.podLabels" -}}
{{ include "nim-llm.selectorLabels" . }}
{{- with .Values.image.tag }}
app.kubernetes.io/version: {{ . | trunc 63 | trimSuffix "-" | quote }}
{{- end }}
app.kubernetes.io/component: inference
app.kubernetes.io/part-of: nimgen
{{- with merge (dict) .Values.podLabels .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
ServiceAccount the pods run as: the created one, or an existing one (default when none is named).
*/}}
{{- define "nim-llm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nim-llm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference repository[:tag][@digest]. Floating references are refused: every replica, on every
node and after every reschedule, must run the same NIM build.
*/}}
{{- define "nim-llm.image" -}}
{{- if eq .Values.image.tag "latest" }}
{{- fail "image.tag 'latest' floats between NIM releases: pin a released tag (e.g. 1.0.3) or set image.digest" }}
{{- end }}
{{- if and (not .Values.image.tag) (not .Values.image.digest) }}
{{- fail "set image.tag or image.digest: an unpinned NIM image may differ on every node" }}
{{- end }}
{{- .Values.image.repository }}
{{- with .Values.image.tag }}:{{ . }}{{ end }}
{{- with .Values.image.digest }}@{{ . }}{{ end }}
{{- end }}

{{/*
Image pull policy: image.pullPolicy when set, else IfNotPresent for a digest (its bytes cannot change) and
Always for a tag (each container start resolves the tag again and re-checks the pull secret; cached
layers are not downloaded again).
*/}}
{{- define "nim-llm.imagePullPolicy" -}}
{{- if .Values.image.pullPolicy }}
{{- .Values.image.pullPolicy }}
{{- else if .Values.image.digest }}
{{- "IfNotPresent" }}
{{- else }}
{{- "Always" }}
{{- end }}
{{- end }}

{{/*
Headless Service that gives StatefulSet pods stable DNS names (the StatefulSet's serviceName).
*/}}
{{- define "nim-llm.headlessServiceName" -}}
{{- printf "%s-headless" (include "nim-llm.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Environment variable names the chart sets itself; env and secretEnv may not repeat them (a duplicate
name silently overrides the first one in Kubernetes).
*/}}
{{- define "nim-llm.reservedEnv" -}}
{{- list "NIM_CACHE_PATH" "NIM_SERVER_PORT" "NIM_JSONL_LOGGING" "NIM_LOG_LEVEL" "OUTLINES_CACHE_DIR" "NIM_SERVED_MODEL_NAME" "NIM_MODEL_PROFILE" "NGC_API_KEY" | toJson }}
{{- end }}

{{/*
Cross-field checks a JSON schema cannot express, with messages that say what to change. Included
once, from the workload template, which every render contains.
*/}}
{{- define "nim-llm.validate" -}}
{{- $kind := .Values.workload.kind }}
{{- if and (eq .Values.cache.type "claimTemplate") (ne $kind "StatefulSet") }}
{{- fail "cache.type claimTemplate needs workload.kind StatefulSet (claim templates exist only there); use cache.type existingClaim or emptyDir with a Deployment" }}
{{- end }}
{{- if and (eq .Values.cache.type "existingClaim") (not .Values.cache.existingClaim) }}
{{- fail "cache.type existingClaim needs cache.existingClaim: the name of the claim to mount" }}
{{- end }}
{{- if and (gt (int .Values.rollout.maxSurge) 0) (ne $kind "Deployment") }}
{{- fail "rollout.maxSurge needs workload.kind Deployment: a StatefulSet replaces each pod in place and cannot surge" }}
{{- end }}
{{- if and .Values.drain.enabled (lt (int .Values.terminationGracePeriodSeconds) (add .Values.drain.delaySeconds .Values.drain.timeoutSeconds)) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) is shorter than the drain (drain.delaySeconds + drain.timeoutSeconds = %d): Kubernetes would kill NIM mid-request" (int .Values.terminationGracePeriodSeconds) (add .Values.drain.delaySeconds .Values.drain.timeoutSeconds)) }}
{{- end }}
{{- $fullname := include "nim-llm.fullname" . }}
{{- if and (eq $kind "StatefulSet") (gt (len $fullname) 52) }}
{{- fail (printf "name %q is longer than 52 characters: StatefulSet pods would get an invalid controller-revision-hash label; set fullnameOverride or a shorter release name" $fullname) }}
{{- end }}
{{- $reservedLabels := include "nim-llm.reservedLabels" . | fromJsonArray }}
{{- range $source := list "commonLabels" "podLabels" }}
{{- range $key, $_ := index $.Values $source }}
{{- if has $key $reservedLabels }}
{{- fail (printf "%s may not set %q: the chart owns that label" $source $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- $reservedEnv := include "nim-llm.reservedEnv" . | fromJsonArray }}
{{- range $source := list "env" "secretEnv" }}
{{- range $name, $_ := index $.Values $source }}
{{- if has $name $reservedEnv }}
{{- fail (printf "%s may not set %s: the chart sets it (see model.* and cache.mountPath)" $source $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $_ := .Values.env }}
{{- if hasKey $.Values.secretEnv $name }}
{{- fail (printf "%s is in both env and secretEnv: keep one" $name) }}
{{- end }}
{{- end }}
{{- with .Values.autoscaling }}
{{- if .enabled }}
{{- if lt (int .maxReplicas) (int .minReplicas) }}
{{- fail (printf "autoscaling.maxReplicas must be at least autoscaling.minReplicas (got maxReplicas %d < minReplicas %d)" (int .maxReplicas) (int .minReplicas)) }}
{{- end }}
{{- if and (eq .engine "keda") (not .keda.triggers) }}
{{- fail "autoscaling.engine keda needs autoscaling.keda.triggers (e.g. a prometheus trigger on a NIM metric)" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The preStop drain, run by python3 with arguments: delay, timeout, metrics URL. It waits out the endpoint
removal, then polls NIM's metrics until no request runs (NIM 1.x names the gauge num_requests_running,
vLLM-based releases vllm:num_requests_running) or the timeout passes. Errors count as "still running":
the hook never ends a drain early because a scrape failed.
*/}}
{{- define "nim-llm.drainScript" -}}
import re, sys, time, urllib.request
delay, timeout, url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
time.sleep(delay)
deadline = time.monotonic() + timeout
pattern = re.compile(r"^(?:vllm:)?num_requests_running(?:{[^}]*})? ([0-9.eE+-]+)$", re.M)
while time.monotonic() < deadline:
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        if sum(float(v) for v in pattern.findall(text)) == 0:
            break
    except Exception:
        pass
    time.sleep(2)
{{- end }}
