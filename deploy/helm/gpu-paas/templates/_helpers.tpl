{{/* Names and labels. */}}
{{- define "gpu-paas.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gpu-paas.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gpu-paas.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpu-paas.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gpu-paas.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "gpu-paas.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gpu-paas
{{- end -}}

{{- define "gpu-paas.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gpu-paas.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image, by digest only. */}}
{{- define "gpu-paas.image" -}}
{{- $digest := required "image.digest is required (sha256:<64 hex>): pods run repository@digest" .Values.image.digest -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" $digest) -}}
{{- fail (printf "image.digest must be sha256:<64 lowercase hex>, got %q" $digest) -}}
{{- end -}}
{{- printf "%s@%s" .Values.image.repository $digest -}}
{{- end -}}

{{/* The Secret holding SECRET_KEY, PAAS_ENCRYPTION_KEYS, PAAS_AUDIT_CHECKPOINT_KEY, PAAS_METRICS_TOKEN. */}}
{{- define "gpu-paas.secretName" -}}
{{- default (include "gpu-paas.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{- define "gpu-paas.databaseSecretName" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- include "gpu-paas.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "gpu-paas.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecretKey -}}
{{- else -}}
DATABASE_URL
{{- end -}}
{{- end -}}

{{/* The data of the chart's own Secret (checked: production settings refuse weaker values). */}}
{{- define "gpu-paas.secretData" -}}
{{- if not .Values.existingSecret }}
{{- $secretKey := required "secretKey is required (50+ random characters), or set existingSecret" .Values.secretKey }}
{{- if lt (len $secretKey) 50 }}{{ fail "secretKey must have at least 50 characters" }}{{ end }}
{{- $auditKey := required "auditCheckpointKey is required (32+ random characters), or set existingSecret" .Values.auditCheckpointKey }}
{{- if lt (len $auditKey) 32 }}{{ fail "auditCheckpointKey must have at least 32 characters" }}{{ end }}
SECRET_KEY: {{ $secretKey | b64enc | quote }}
PAAS_ENCRYPTION_KEYS: {{ required "encryptionKeys is required (comma-separated Fernet keys), or set existingSecret" .Values.encryptionKeys | b64enc | quote }}
PAAS_AUDIT_CHECKPOINT_KEY: {{ $auditKey | b64enc | quote }}
PAAS_METRICS_TOKEN: {{ required "metricsToken is required (the bearer token of /metrics), or set existingSecret" .Values.metricsToken | b64enc | quote }}
{{- end }}
{{- if not .Values.database.existingSecret }}
DATABASE_URL: {{ required "database.url is required (postgres://...), or set database.existingSecret" .Values.database.url | b64enc | quote }}
{{- end }}
{{- end -}}

{{/* Environment of every process. */}}
{{- define "gpu-paas.env" -}}
- name: DJANGO_SETTINGS_MODULE
  value: paas.settings.production
- name: PAAS_VAR_DIR
  value: /var/lib/gpu-paas
- name: PAAS_AUDIT_CHECKPOINT_DIR
  value: {{ .Values.auditCheckpoints.mountPath | quote }}
- name: PROMETHEUS_MULTIPROC_DIR
  value: /tmp/metrics
{{- range $name := list "SECRET_KEY" "PAAS_ENCRYPTION_KEYS" "PAAS_AUDIT_CHECKPOINT_KEY" "PAAS_METRICS_TOKEN" }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "gpu-paas.secretName" $ }}
      key: {{ $name }}
{{- end }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "gpu-paas.databaseSecretName" . }}
      key: {{ include "gpu-paas.databaseSecretKey" . }}
{{- range $name, $value := .Values.config }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every workload. */}}
{{- define "gpu-paas.podSpec" -}}
serviceAccountName: {{ include "gpu-paas.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Container-level settings shared by every container; env comes last, so a caller may append
entries to it (indented as its items). */}}
{{- define "gpu-paas.container" -}}
image: {{ include "gpu-paas.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
env:
  {{- include "gpu-paas.env" . | nindent 2 }}
{{- end -}}

{{/* Volumes: /tmp, the metrics directory, PAAS_VAR_DIR and the audit checkpoints. */}}
{{- define "gpu-paas.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: metrics
  mountPath: /tmp/metrics
- name: var
  mountPath: /var/lib/gpu-paas
- name: audit-checkpoints
  mountPath: {{ .Values.auditCheckpoints.mountPath }}
{{- end -}}

{{- define "gpu-paas.volumes" -}}
- name: tmp
  emptyDir: {}
- name: metrics
  emptyDir: {}
- name: var
  emptyDir: {}
- name: audit-checkpoints
{{- if .Values.auditCheckpoints.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-audit-checkpoints" (include "gpu-paas.fullname" .)) .Values.auditCheckpoints.persistence.existingClaim }}
{{- else if .Values.auditCheckpoints.volume }}
  {{- toYaml .Values.auditCheckpoints.volume | nindent 2 }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end -}}

{{/* The agents' queues as a list of {queue, replicas}; "default" first, always. */}}
{{- define "gpu-paas.workerQueues" -}}
{{- $queues := list (dict "queue" "default" "replicas" .Values.workers.replicas) -}}
{{- range .Values.workers.agents -}}
{{- $queue := . -}}
{{- if not (kindIs "string" .) -}}{{- $queue = (get . "queue") | default "" -}}{{- end -}}
{{- range $queues -}}
{{- if eq .queue $queue -}}
{{- fail (printf "workers.agents: the queue %q is listed twice (the default queue always has its workers)" $queue) -}}
{{- end -}}
{{- end -}}
{{- if kindIs "string" . -}}
{{- $queues = append $queues (dict "queue" . "replicas" $.Values.workers.replicas) -}}
{{- else -}}
{{- $queues = append $queues (dict "queue" (required "workers.agents[].queue is required" .queue) "replicas" (default $.Values.workers.replicas .replicas)) -}}
{{- end -}}
{{- end -}}
{{- range $queues -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$" .queue) -}}
{{- fail (printf "workers.agents: %q is not a queue name (agent-<name>, lowercase letters, digits and '-', at most 40)" .queue) -}}
{{- end -}}
{{- end -}}
{{- toJson $queues -}}
{{- end -}}
