{{/*
Names, labels and the pieces every workload shares.
*/}}

{{- define "recsys.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's prefix of every object name; "recsys" when the release is called recsys. */}}
{{- define "recsys.fullname" -}}
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

{{- define "recsys.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels; call with (dict "ctx" $ "component" "api"). */}}
{{- define "recsys.labels" -}}
helm.sh/chart: {{ include "recsys.chart" .ctx }}
{{ include "recsys.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: recsys
{{- end }}

{{- define "recsys.selectorLabels" -}}
app.kubernetes.io/name: {{ include "recsys.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/* Matches every pod of the release (NetworkPolicies). */}}
{{- define "recsys.releaseSelector" -}}
app.kubernetes.io/name: {{ include "recsys.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "recsys.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "recsys.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image of the platform; call with (dict "ctx" $ "values" .Values.api). */}}
{{- define "recsys.image" -}}
{{- $tag := .values.image.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion -}}
{{- $registry := .ctx.Values.image.registry | trimSuffix "/" -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry .values.image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .values.image.repository $tag -}}
{{- end -}}
{{- end }}

{{/* A third-party image (Kafka, Cassandra, Redis): repository and tag, no registry prefix. */}}
{{- define "recsys.thirdPartyImage" -}}
{{- printf "%s:%s" .image.repository .image.tag -}}
{{- end }}

{{/* The platform's pods: non-root uid 10001, the runtime's default seccomp profile. */}}
{{- define "recsys.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "recsys.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* --- Where the dependencies are: in-cluster StatefulSets or external endpoints. --- */}}

{{- define "recsys.kafka.bootstrapServers" -}}
{{- if .Values.kafka.enabled -}}
{{- printf "%s-kafka:%d" (include "recsys.fullname" .) (int .Values.kafka.port) -}}
{{- else -}}
{{- required "kafka.enabled is false: set kafka.external.bootstrapServers (host:port,...)" .Values.kafka.external.bootstrapServers -}}
{{- end -}}
{{- end }}

{{- define "recsys.cassandra.hosts" -}}
{{- if .Values.cassandra.enabled -}}
{{- printf "%s-cassandra" (include "recsys.fullname" .) -}}
{{- else -}}
{{- required "cassandra.enabled is false: set cassandra.external.hosts (comma-separated contact points)" .Values.cassandra.external.hosts -}}
{{- end -}}
{{- end }}

{{- define "recsys.cassandra.port" -}}
{{- if .Values.cassandra.enabled -}}{{ .Values.cassandra.port }}{{- else -}}{{ .Values.cassandra.external.port }}{{- end -}}
{{- end }}

{{- define "recsys.redis.host" -}}
{{- if .Values.redis.enabled -}}
{{- printf "%s-redis" (include "recsys.fullname" .) -}}
{{- else -}}
{{- required "redis.enabled is false: set redis.external.host" .Values.redis.external.host -}}
{{- end -}}
{{- end }}

{{- define "recsys.redis.port" -}}
{{- if .Values.redis.enabled -}}{{ .Values.redis.port }}{{- else -}}{{ .Values.redis.external.port }}{{- end -}}
{{- end }}

{{/* --- API keys of the ingest API (RECSYS_INGEST__API_KEYS) --- */}}

{{/* The key config.py accepts by default: fine on a laptop, never in a cluster. */}}
{{- define "recsys.localApiKey" -}}local-dev-key{{- end }}

{{- define "recsys.apiKeys.secretName" -}}
{{- if .Values.apiKeys.existingSecret -}}
{{- .Values.apiKeys.existingSecret -}}
{{- else -}}
{{- printf "%s-api-keys" (include "recsys.fullname" .) -}}
{{- end -}}
{{- end }}

{{- define "recsys.apiKeys.secretKey" -}}
{{- if .Values.apiKeys.existingSecret -}}{{ .Values.apiKeys.existingSecretKey }}{{- else -}}api-keys{{- end -}}
{{- end }}

{{/*
The keys the chart's own Secret holds: apiKeys.value, else the Secret of an earlier install
(lookup; empty under `helm template`), else a random key when apiKeys.generate is true.
Refuses an empty list and the local default key.
*/}}
{{- define "recsys.apiKeys.value" -}}
{{- $value := .Values.apiKeys.value | default "" | trim -}}
{{- if and (not $value) .Values.apiKeys.generate -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "recsys.apiKeys.secretName" .) -}}
{{- if and $existing $existing.data (hasKey $existing.data "api-keys") -}}
{{- $value = index $existing.data "api-keys" | b64dec -}}
{{- else -}}
{{- $value = randAlphaNum 40 -}}
{{- end -}}
{{- end -}}
{{- $keys := list -}}
{{- range (splitList "," $value) -}}
{{- if trim . -}}{{- $keys = append $keys (trim .) -}}{{- end -}}
{{- end -}}
{{- if not $keys -}}
{{- fail "apiKeys: no API key for the ingest API. Set apiKeys.value (comma-separated keys), apiKeys.existingSecret, or apiKeys.generate=true" -}}
{{- end -}}
{{- if has (include "recsys.localApiKey" .) $keys -}}
{{- fail (printf "apiKeys: refusing the local development key %q (the default of RECSYS_INGEST__API_KEYS); set apiKeys.value to a secret of your own or use apiKeys.existingSecret" (include "recsys.localApiKey" .)) -}}
{{- end -}}
{{- join "," $keys -}}
{{- end }}

{{/* --- Settings every platform container gets --- */}}

{{/* The ConfigMap of settings, then the API keys from the Secret; call with the root. */}}
{{- define "recsys.settingsEnvFrom" -}}
- configMapRef:
    name: {{ include "recsys.fullname" . }}-settings
{{- end }}

{{- define "recsys.apiKeysEnv" -}}
- name: RECSYS_INGEST__API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "recsys.apiKeys.secretName" . }}
      key: {{ include "recsys.apiKeys.secretKey" . }}
{{- end }}

{{/* A component's extra settings (values <component>.env): a map of RECSYS_* name to value. */}}
{{- define "recsys.extraEnv" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* Scheduling knobs of a component; call with its values. */}}
{{- define "recsys.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The volume with the model registry and the lake, shared by pipelines and serving pods. */}}
{{- define "recsys.dataClaimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-data" (include "recsys.fullname" .)) -}}
{{- end }}

{{/* The metrics port probe of a stream worker: ready when its readiness gauge is 1.
Call with (dict "port" 9101 "metric" "recsys_features_ready"). */}}
{{- define "recsys.gaugeProbeCommand" -}}
- python
- -c
- |
  import sys, urllib.request
  body = urllib.request.urlopen("http://127.0.0.1:{{ .port }}/metrics", timeout=2).read().decode()
  sys.exit(0 if "\n{{ .metric }} 1.0\n" in "\n" + body else 1)
{{- end }}
