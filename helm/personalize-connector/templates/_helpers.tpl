{{/* Names and labels. */}}
{{- define "pkc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pkc.fullname" -}}
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

{{- define "pkc.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pkc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pkc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pkc.labels" -}}
helm.sh/chart: {{ include "pkc.chart" . }}
{{ include "pkc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: connector
app.kubernetes.io/part-of: personalize-kafka-connector
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "pkc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pkc.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pkc.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The PutEvents rate every pod is given: the quota of the whole consumer group, as is. Each pod uses
the share of it that its partitions are of the topics' (docs/architecture.md, "The quota belongs
to the consumer group"), so the pods stay within it together at any replica count.
*/}}
{{- define "pkc.maxRequestsPerSecond" -}}
{{- .Values.personalize.quotaRequestsPerSecond }}
{{- end }}

{{/*
The connector's config.yaml: .Values.config verbatim, plus the computed rate.
*/}}
{{- define "pkc.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $personalize := default (dict) $cfg.personalize }}
{{- $_ := set $personalize "max_requests_per_second" (include "pkc.maxRequestsPerSecond" . | float64) }}
{{- $_ := set $cfg "personalize" $personalize }}
{{- toYaml $cfg }}
{{- end }}

{{- define "pkc.metricsPort" -}}
{{- $obs := default (dict) .Values.config.observability }}
{{- hasKey $obs "metrics_port" | ternary $obs.metrics_port 9400 | int }}
{{- end }}

{{/* ceil(shutdown.grace_period_s) + margin */}}
{{- define "pkc.terminationGracePeriodSeconds" -}}
{{- $shutdown := default (dict) .Values.config.shutdown }}
{{- $grace := hasKey $shutdown "grace_period_s" | ternary $shutdown.grace_period_s 30 }}
{{- add (ceil $grace | int) (.Values.terminationGraceMarginSeconds | int) }}
{{- end }}

{{- define "pkc.kafkaSecretName" -}}
{{- default (printf "%s-kafka" (include "pkc.fullname" .)) .Values.kafkaCredentials.existingSecret }}
{{- end }}

{{- define "pkc.registrySecretName" -}}
{{- default (printf "%s-schema-registry" (include "pkc.fullname" .)) .Values.schemaRegistryCredentials.existingSecret }}
{{- end }}

{{/* Kafka property -> key in the Secret (the chart's own, or existingSecret). */}}
{{- define "pkc.kafkaSecretKeys" -}}
{{- $c := .Values.kafkaCredentials }}
{{- $keys := dict }}
{{- if $c.existingSecret }}
{{- $keys = default (dict "sasl.username" "sasl.username" "sasl.password" "sasl.password") $c.existingSecretKeys }}
{{- else }}
{{- range $property, $_ := $c.properties }}
{{- $_ := set $keys $property $property }}
{{- end }}
{{- end }}
{{- toJson $keys }}
{{- end }}

{{- define "pkc.registryCredentialsSet" -}}
{{- $c := .Values.schemaRegistryCredentials }}
{{- if or $c.existingSecret $c.basicAuthUser $c.basicAuthPassword $c.bearerToken }}true{{ end }}
{{- end }}

{{/* Fail early on contradictory values (the schema cannot express these readably). */}}
{{- define "pkc.validate" -}}
{{- include "pkc.validateRestricted" . }}
{{- if and .Values.keda.enabled .Values.autoscaling.enabled }}
{{- fail "keda.enabled and autoscaling.enabled are mutually exclusive: KEDA creates its own HorizontalPodAutoscaler" }}
{{- end }}
{{- if and .Values.kafkaCredentials.existingSecret .Values.kafkaCredentials.properties }}
{{- fail "kafkaCredentials: set either properties (the chart creates the Secret) or existingSecret, not both" }}
{{- end }}
{{- $r := .Values.schemaRegistryCredentials }}
{{- if and $r.existingSecret (or $r.basicAuthUser $r.basicAuthPassword $r.bearerToken) }}
{{- fail "schemaRegistryCredentials: set either basicAuthUser/basicAuthPassword/bearerToken (the chart creates the Secret) or existingSecret, not both" }}
{{- end }}
{{- $kafka := default (dict) .Values.config.kafka }}
{{- range $property, $_ := default (dict) $kafka.config }}
{{- if regexMatch "(?i)password|secret|jaas|\\.key\\.pem$" $property }}
{{- fail (printf "config.kafka.config.%s looks like a credential: put it in kafkaCredentials.properties (or kafkaCredentials.existingSecret) so it lives in a Secret, not in the ConfigMap" $property) }}
{{- end }}
{{- end }}
{{- end }}
