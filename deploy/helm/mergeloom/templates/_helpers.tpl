{{- define "mergeloom.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mergeloom.fullname" -}}
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

{{- define "mergeloom.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "mergeloom.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "mergeloom.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mergeloom.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mergeloom.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mergeloom.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mergeloom.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The bundled NATS chart's Service name (same rule as that chart's nats.fullname). */}}
{{- define "mergeloom.natsHost" -}}
{{- if .Values.nats.fullnameOverride }}
{{- .Values.nats.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains "nats" .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-nats" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* One URL for coordinator and workers: the external one, else the bundled NATS. */}}
{{- define "mergeloom.natsUrl" -}}
{{- if .Values.natsConnection.url }}
{{- .Values.natsConnection.url }}
{{- else if .Values.nats.enabled }}
{{- printf "nats://%s.%s.svc:4222" (include "mergeloom.natsHost" .) .Release.Namespace }}
{{- else }}
{{- fail "mergeloom: no NATS to connect to: set natsConnection.url to an existing NATS, or nats.enabled=true to install one" }}
{{- end }}
{{- end }}

{{- define "mergeloom.claimName" -}}
{{- default (printf "%s-models" (include "mergeloom.fullname" .)) .Values.modelVolume.existingClaim }}
{{- end }}

{{/* Environment shared by coordinator and workers: NATS, credentials, tracing. Call with (dict "root" $ "component" "worker"). */}}
{{- define "mergeloom.commonEnv" -}}
{{- $v := .root.Values -}}
- name: MERGELOOM_NATS_URL
  value: {{ include "mergeloom.natsUrl" .root | quote }}
{{- with $v.natsConnection.auth }}
{{- $secret := .existingSecret }}
{{- if and (not $secret) (or .userKey .passwordKey .tokenKey .nkeySeedKey .credsKey) }}
{{- fail "mergeloom: natsConnection.auth names Secret keys but no existingSecret" }}
{{- end }}
{{- range $env, $key := dict "NATS_USER" .userKey "NATS_PASSWORD" .passwordKey "NATS_TOKEN" .tokenKey "NATS_NKEY_SEED" .nkeySeedKey }}
{{- if $key }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- if .credsKey }}
- name: NATS_CREDS
  value: /etc/mergeloom/nats-auth/{{ .credsKey }}
{{- end }}
{{- end }}
{{- with $v.natsConnection.tls }}
{{- if .existingSecret }}
{{- if .caKey }}
- name: NATS_TLS_CA
  value: /etc/mergeloom/nats-tls/{{ .caKey }}
{{- end }}
{{- if .certKey }}
- name: NATS_TLS_CERT
  value: /etc/mergeloom/nats-tls/{{ .certKey }}
{{- end }}
{{- if .keyKey }}
- name: NATS_TLS_KEY
  value: /etc/mergeloom/nats-tls/{{ .keyKey }}
{{- end }}
{{- end }}
{{- end }}
{{- with $v.hub }}
{{- if .endpoint }}
- name: HF_ENDPOINT
  value: {{ .endpoint | quote }}
{{- end }}
{{- if .tokenSecret }}
{{- /* One token for the whole pool (one egress): from a Secret, never from values. */}}
- name: HF_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .tokenSecret }}
      key: {{ .tokenKey | default "token" }}
{{- end }}
{{- if .offline }}
- name: HF_HUB_OFFLINE
  value: "1"
{{- end }}
{{- end }}
{{- if $v.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $v.otel.endpoint | quote }}
{{- end }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "%s-%s" $v.otel.serviceName .component | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "k8s.namespace.name=%s,service.instance.id=$(POD_NAME)" .root.Release.Namespace | quote }}
{{- end }}

{{/* POD_NAME first: later entries refer to it with $(POD_NAME). */}}
{{- define "mergeloom.podNameEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}

{{- define "mergeloom.volumeMounts" -}}
- name: models
  mountPath: {{ .Values.modelVolume.mountPath }}
- name: tmp
  mountPath: /tmp
{{- if .Values.natsConnection.auth.credsKey }}
- name: nats-auth
  mountPath: /etc/mergeloom/nats-auth
  readOnly: true
{{- end }}
{{- if .Values.natsConnection.tls.existingSecret }}
- name: nats-tls
  mountPath: /etc/mergeloom/nats-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "mergeloom.volumes" -}}
- name: models
  persistentVolumeClaim:
    claimName: {{ include "mergeloom.claimName" . }}
- name: tmp
  emptyDir: {}
{{- if .Values.natsConnection.auth.credsKey }}
- name: nats-auth
  secret:
    secretName: {{ .Values.natsConnection.auth.existingSecret }}
    items:
      - key: {{ .Values.natsConnection.auth.credsKey }}
        path: {{ .Values.natsConnection.auth.credsKey }}
{{- end }}
{{- if .Values.natsConnection.tls.existingSecret }}
- name: nats-tls
  secret:
    secretName: {{ .Values.natsConnection.tls.existingSecret }}
{{- end }}
{{- end }}
