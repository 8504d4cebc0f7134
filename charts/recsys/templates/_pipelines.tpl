{{/*
The pod of a pipelines Job or CronJob: the recsys-pipelines image running one `recsys` command,
with the settings, the API keys (the first run posts traffic through the ingest API) and the
shared volume (the lake and the model registry). Call with ctx, component, args (a list).
*/}}
{{- define "recsys.pipelinePod" -}}
{{- $ctx := .ctx -}}
{{- $v := $ctx.Values.pipelines -}}
metadata:
  labels:
    {{- include "recsys.selectorLabels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "recsys.serviceAccountName" $ctx }}
  automountServiceAccountToken: false
  {{- with $ctx.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "recsys.podSecurityContext" $ctx | nindent 4 }}
  {{- include "recsys.scheduling" $v | nindent 2 }}
  containers:
    - name: {{ .component }}
      image: {{ include "recsys.image" (dict "ctx" $ctx "values" $v) }}
      imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
      command:
        - recsys
      args:
        {{- toYaml .args | nindent 8 }}
      envFrom:
        {{- include "recsys.settingsEnvFrom" $ctx | nindent 8 }}
      env:
        {{- include "recsys.apiKeysEnv" $ctx | nindent 8 }}
        {{- include "recsys.extraEnv" $v.env | nindent 8 }}
      resources:
        {{- toYaml (.resources | default $v.resources) | nindent 8 }}
      securityContext:
        {{- include "recsys.containerSecurityContext" $ctx | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if .data }}
        - name: data
          mountPath: /data
        {{- end }}
  volumes:
    # DuckDB spills and PyTorch scratch go to /tmp: size it with pipelines.tmpSize.
    - name: tmp
      emptyDir:
        sizeLimit: {{ $v.tmpSize }}
    {{- if .data }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ include "recsys.dataClaimName" $ctx }}
    {{- end }}
{{- end }}
