{{/*
Kafka, Cassandra and Redis for a self-contained install: a single-node StatefulSet each with a
PersistentVolumeClaim. Each can be switched off for an external endpoint (values
<name>.enabled=false, <name>.external.*).

Call with ctx, name, values, port (the client port), extraPorts (list of name/port), uid,
readOnlyRootFilesystem, dataPath, container (rendered YAML: env, args, probes).
*/}}
{{- define "recsys.infraStatefulSet" -}}
{{- $fullname := include "recsys.fullname" .ctx -}}
{{- $v := .values -}}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $fullname }}-{{ .name }}
  labels:
    {{- include "recsys.labels" (dict "ctx" .ctx "component" .name) | nindent 4 }}
spec:
  replicas: 1
  serviceName: {{ $fullname }}-{{ .name }}-headless
  selector:
    matchLabels:
      {{- include "recsys.selectorLabels" (dict "ctx" .ctx "component" .name) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "recsys.selectorLabels" (dict "ctx" .ctx "component" .name) | nindent 8 }}
    spec:
      automountServiceAccountToken: false
      serviceAccountName: {{ include "recsys.serviceAccountName" .ctx }}
      securityContext:
        runAsNonRoot: true
        runAsUser: {{ .uid }}
        runAsGroup: {{ .uid }}
        fsGroup: {{ .uid }}
        fsGroupChangePolicy: OnRootMismatch
        seccompProfile:
          type: RuntimeDefault
      terminationGracePeriodSeconds: 60
      {{- include "recsys.scheduling" $v | nindent 6 }}
      containers:
        - name: {{ .name }}
          image: {{ include "recsys.thirdPartyImage" $v }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          ports:
            - name: client
              containerPort: {{ .port }}
              protocol: TCP
            {{- range .extraPorts }}
            - name: {{ .name }}
              containerPort: {{ .port }}
              protocol: TCP
            {{- end }}
          {{- .container | nindent 10 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: {{ .readOnlyRootFilesystem }}
            runAsNonRoot: true
            capabilities:
              drop:
                - ALL
            seccompProfile:
              type: RuntimeDefault
          volumeMounts:
            - name: data
              mountPath: {{ .dataPath }}
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir: {}
  volumeClaimTemplates:
    - metadata:
        name: data
        labels:
          {{- include "recsys.selectorLabels" (dict "ctx" .ctx "component" .name) | nindent 10 }}
      spec:
        accessModes:
          - ReadWriteOnce
        {{- with $v.persistence.storageClass }}
        storageClassName: {{ . | quote }}
        {{- end }}
        resources:
          requests:
            storage: {{ $v.persistence.size }}
---
{{- /* The address clients use. */}}
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}-{{ .name }}
  labels:
    {{- include "recsys.labels" (dict "ctx" .ctx "component" .name) | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "recsys.selectorLabels" (dict "ctx" .ctx "component" .name) | nindent 4 }}
  ports:
    - name: client
      port: {{ .port }}
      targetPort: client
      protocol: TCP
---
{{- /* The StatefulSet's governing Service (stable pod DNS names). */}}
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}-{{ .name }}-headless
  labels:
    {{- include "recsys.labels" (dict "ctx" .ctx "component" .name) | nindent 4 }}
spec:
  type: ClusterIP
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    {{- include "recsys.selectorLabels" (dict "ctx" .ctx "component" .name) | nindent 4 }}
  ports:
    - name: client
      port: {{ .port }}
      targetPort: client
      protocol: TCP
    {{- range .extraPorts }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .name }}
      protocol: TCP
    {{- end }}
{{- end }}
