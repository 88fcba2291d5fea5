{{/* The release's base name, at most 63 characters. */}}
{{- define "stampede.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "stampede.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object; pass (dict "root" $ "component" "x"). */}}
{{- define "stampede.labels" -}}
app.kubernetes.io/name: {{ include "stampede.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/component: {{ .component }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "stampede.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stampede.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "stampede.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "stampede.tokenSecret" -}}
{{- default (printf "%s-token" (include "stampede.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* The Secret with the results store's URL, when there is a results store. */}}
{{- define "stampede.resultsSecret" -}}
{{- if .Values.results.postgres.existingSecret -}}
{{- .Values.results.postgres.existingSecret -}}
{{- else if .Values.results.postgres.url -}}
{{- printf "%s-results" (include "stampede.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "stampede.coordinatorService" -}}
{{- printf "%s-coordinator" (include "stampede.fullname" .) -}}
{{- end -}}

{{/* The coordinator's gRPC URL as agents and clients use it. */}}
{{- define "stampede.coordinatorUrl" -}}
{{- printf "%s://%s:%d" (ternary "https" "http" (ne .Values.tls.secretName "")) (include "stampede.coordinatorService" .) (int .Values.coordinator.grpcPort) -}}
{{- end -}}

{{/* etcd client URLs, or "" without etcd. */}}
{{- define "stampede.etcdUrls" -}}
{{- if .Values.etcd.enabled -}}
{{- printf "http://%s-etcd:2379" (include "stampede.fullname" .) -}}
{{- else -}}
{{- .Values.etcd.external -}}
{{- end -}}
{{- end -}}

{{/* Flags and environment shared by everything that talks to the coordinator. */}}
{{- define "stampede.commonEnv" -}}
- name: STAMPEDE_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: STAMPEDE_TOKEN_FILE
  value: /var/run/stampede/token/token
{{- with .Values.otlp.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with (include "stampede.etcdUrls" .) }}
- name: STAMPEDE_ETCD
  value: {{ . | quote }}
- name: STAMPEDE_ETCD_PREFIX
  value: {{ $.Values.etcd.prefix | quote }}
{{- end }}
{{- end -}}

{{/* The client side of TLS: the CA that signed the coordinator's certificate. */}}
{{- define "stampede.clientTlsEnv" -}}
{{- if .Values.tls.secretName }}
- name: STAMPEDE_TLS_CA
  value: /var/run/stampede/tls/ca.crt
{{- end }}
{{- end -}}

{{- define "stampede.commonMounts" -}}
- name: token
  mountPath: /var/run/stampede/token
  readOnly: true
{{- if .Values.tls.secretName }}
- name: tls
  mountPath: /var/run/stampede/tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "stampede.commonVolumes" -}}
- name: token
  secret:
    secretName: {{ include "stampede.tokenSecret" . }}
    defaultMode: 0440
{{- if .Values.tls.secretName }}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* Checks that values which the schema cannot relate fit together. */}}
{{- define "stampede.validate" -}}
{{- if and (gt (int .Values.coordinator.replicas) 1) (not (include "stampede.etcdUrls" .)) -}}
{{- fail "coordinator.replicas > 1 needs etcd: set etcd.enabled=true or etcd.external (without etcd each coordinator would keep its own runs)" -}}
{{- end -}}
{{- if and .Values.results.postgres.url .Values.results.postgres.existingSecret -}}
{{- fail "give the results store once: results.postgres.url or results.postgres.existingSecret, not both" -}}
{{- end -}}
{{- if and .Values.results.postgres.url (not (regexMatch "^postgres(ql)?://" .Values.results.postgres.url)) -}}
{{- fail "results.postgres.url must be a postgres://user:password@host:port/database URL" -}}
{{- end -}}
{{- if and .Values.etcd.enabled .Values.etcd.external -}}
{{- fail "set either etcd.enabled (an etcd in this release) or etcd.external (your own), not both" -}}
{{- end -}}
{{- if and .Values.job.enabled (not .Values.job.scenario) (not .Values.job.scenarioConfigMap.name) -}}
{{- fail "job.enabled needs a scenario: job.scenario (inline YAML, e.g. --set-file job.scenario=my.yaml) or job.scenarioConfigMap.name" -}}
{{- end -}}
{{- $mode := .Values.job.mode | default "submit" -}}
{{- if and (ne $mode "submit") (or .Values.job.baseline.runId .Values.job.baseline.configMap.name) -}}
{{- fail (printf "job.baseline compares one run with its baseline: it needs job.mode=submit, not %s (compare a sweep's or suite's runs with `stampede compare` afterwards)" $mode) -}}
{{- end -}}
{{- if and (eq $mode "suite") .Values.job.endpoints -}}
{{- fail "job.endpoints with job.mode=suite: a suite names endpoints per entry (`endpoints:` of an entry, or ${VARIABLES} from the Job's environment)" -}}
{{- end -}}
{{- if and .Values.job.scenario .Values.job.scenarioConfigMap.name -}}
{{- fail "give the Job's scenario once: job.scenario or job.scenarioConfigMap.name, not both" -}}
{{- end -}}
{{- end -}}
