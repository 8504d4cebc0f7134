{{/*
One platform service as a Deployment (or a StatefulSet), with its probes, settings, volumes and
security context. Called from the services' templates with a dict:

  ctx        the root context
  component  api, ingest, ...
  values     the component's values (.Values.api ...)
  kind       Deployment (default) or StatefulSet
  command    the container's command (a list)
  ports      list of (dict "name" "grpc" "port" 50051)
  env        extra env entries, rendered YAML (a list) or ""
  probes     startupProbe, readinessProbe, livenessProbe, rendered YAML
  data       "" (no shared volume), "ro" or "rw": the registry and lake volume at /data
  apiKeys    true to get RECSYS_INGEST__API_KEYS from the Secret
  experimentsConfig  true to mount the experiments ConfigMap
  strategy   rendered YAML of the Deployment strategy, or ""
*/}}
{{- define "recsys.workload" -}}
{{- $ctx := .ctx -}}
{{- $v := .values -}}
{{- $kind := .kind | default "Deployment" -}}
{{- $fullname := include "recsys.fullname" $ctx -}}
apiVersion: apps/v1
kind: {{ $kind }}
metadata:
  name: {{ $fullname }}-{{ .component }}
  labels:
    {{- include "recsys.labels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
spec:
  {{- if not (and $v.autoscaling $v.autoscaling.enabled) }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- if eq $kind "StatefulSet" }}
  serviceName: {{ $fullname }}-{{ .component }}
  podManagementPolicy: Parallel
  {{- else if .strategy }}
  strategy:
    {{- .strategy | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "recsys.selectorLabels" (dict "ctx" $ctx "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "recsys.selectorLabels" (dict "ctx" $ctx "component" .component) | nindent 8 }}
      annotations:
        # Settings are read once at start: roll the pods when they change.
        checksum/settings: {{ include (print $ctx.Template.BasePath "/settings.yaml") $ctx | sha256sum }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "recsys.serviceAccountName" $ctx }}
      automountServiceAccountToken: false
      {{- with $ctx.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "recsys.podSecurityContext" $ctx | nindent 8 }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds | default 30 }}
      {{- include "recsys.scheduling" $v | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "recsys.image" (dict "ctx" $ctx "values" $v) }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          command:
            {{- toYaml .command | nindent 12 }}
          ports:
            {{- range .ports }}
            - name: {{ .name }}
              containerPort: {{ .port }}
              protocol: TCP
            {{- end }}
          envFrom:
            {{- include "recsys.settingsEnvFrom" $ctx | nindent 12 }}
          {{- $env := .env | default "" }}
          {{- if .apiKeys }}
          {{- $env = printf "%s\n%s" $env (include "recsys.apiKeysEnv" $ctx) }}
          {{- end }}
          {{- $env = printf "%s\n%s" $env (include "recsys.extraEnv" $v.env) | trim }}
          {{- if $env }}
          env:
            {{- $env | nindent 12 }}
          {{- end }}
          {{- .probes | nindent 10 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- include "recsys.containerSecurityContext" $ctx | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if .data }}
            - name: data
              mountPath: /data
              readOnly: {{ eq .data "ro" }}
            {{- end }}
            {{- if .experimentsConfig }}
            - name: experiments-config
              mountPath: /etc/recsys/experiments
              readOnly: true
            {{- end }}
      volumes:
        # The root filesystem is read-only; /tmp is the one writable place.
        - name: tmp
          emptyDir:
            sizeLimit: {{ $v.tmpSize | default "256Mi" }}
        {{- if .data }}
        - name: data
          persistentVolumeClaim:
            claimName: {{ include "recsys.dataClaimName" $ctx }}
        {{- end }}
        {{- if .experimentsConfig }}
        # The whole directory, not a subPath: a changed ConfigMap reaches the file and the
        # service reloads it (RECSYS_EXPERIMENTS__CONFIG_CHECK_S).
        - name: experiments-config
          configMap:
            name: {{ $fullname }}-experiments
        {{- end }}
{{- end }}

{{/* A ClusterIP Service; call with ctx, component, ports (list of name/port), headless. */}}
{{- define "recsys.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "recsys.fullname" .ctx }}-{{ .component }}
  labels:
    {{- include "recsys.labels" (dict "ctx" .ctx "component" .component) | nindent 4 }}
spec:
  type: ClusterIP
  {{- if .headless }}
  clusterIP: None
  {{- end }}
  selector:
    {{- include "recsys.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 4 }}
  ports:
    {{- range .ports }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .name }}
      protocol: TCP
      {{- if .appProtocol }}
      appProtocol: {{ .appProtocol }}
      {{- end }}
    {{- end }}
{{- end }}

{{/* An HPA on CPU; call with ctx, component, values, kind. */}}
{{- define "recsys.hpa" -}}
{{- if and .values.autoscaling .values.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "recsys.fullname" .ctx }}-{{ .component }}
  labels:
    {{- include "recsys.labels" (dict "ctx" .ctx "component" .component) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "recsys.fullname" .ctx }}-{{ .component }}
  minReplicas: {{ .values.autoscaling.minReplicas }}
  maxReplicas: {{ .values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .values.autoscaling.targetCPUUtilizationPercentage }}
  behavior:
    scaleDown:
      # Python services start in seconds but load models: do not flap.
      stabilizationWindowSeconds: 300
{{- end }}
{{- end }}

{{/* A PodDisruptionBudget; call with ctx, component, values. */}}
{{- define "recsys.pdb" -}}
{{- if and .values.pdb .values.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "recsys.fullname" .ctx }}-{{ .component }}
  labels:
    {{- include "recsys.labels" (dict "ctx" .ctx "component" .component) | nindent 4 }}
spec:
  maxUnavailable: {{ .values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "recsys.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 6 }}
{{- end }}
{{- end }}
