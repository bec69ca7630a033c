{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "kongbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full resource name: <release>-<chart>, or the release name when it already
contains the chart name (so `helm install kongbot` gives "kongbot").
*/}}
{{- define "kongbot.fullname" -}}
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

{{- define "kongbot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kongbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kongbot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kongbot.labels" -}}
helm.sh/chart: {{ include "kongbot.chart" . }}
{{ include "kongbot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kongbot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kongbot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kongbot.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The Slack transport, read from the config file itself so that the chart and
the bot can never disagree about it. The bot's default is socket.
*/}}
{{- define "kongbot.mode" -}}
{{- $mode := default "socket" ((.Values.config).slack).mode }}
{{- if not (has $mode (list "socket" "http")) }}
{{- fail (printf "config.slack.mode %q is not socket or http" $mode) }}
{{- end }}
{{- $mode }}
{{- end }}

{{/*
The environment variables the pod gets from the Secret, as a JSON list:
every secret the config file names for the chosen mode (slack tokens,
each gateway's datastore DSN and admin token) plus secrets.extraEnv,
sorted and without duplicates.
*/}}
{{- define "kongbot.secretEnvNames" -}}
{{- $names := list }}
{{- $slack := (.Values.config).slack | default dict }}
{{- with $slack.bot_token_env }}{{ $names = append $names . }}{{ end }}
{{- if eq (include "kongbot.mode" .) "socket" }}
{{- with $slack.app_token_env }}{{ $names = append $names . }}{{ end }}
{{- else }}
{{- with $slack.signing_secret_env }}{{ $names = append $names . }}{{ end }}
{{- end }}
{{- range $i, $gw := (.Values.config).gateways }}
{{- with ($gw.datastore | default dict).dsn_env }}{{ $names = append $names . }}{{ end }}
{{- with $gw.admin_token_env }}{{ $names = append $names . }}{{ end }}
{{- end }}
{{- range .Values.secrets.extraEnv }}{{ $names = append $names . }}{{ end }}
{{- range $names }}
{{- if not (regexMatch "^[A-Za-z_][A-Za-z0-9_]*$" .) }}
{{- fail (printf "%q is not an environment variable name (the config's *_env fields and secrets.extraEnv name variables, they do not hold values)" .) }}
{{- end }}
{{- end }}
{{- $names | uniq | sortAlpha | toJson }}
{{- end }}

{{- define "kongbot.secretName" -}}
{{- default (include "kongbot.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "kongbot.claimName" -}}
{{- default (printf "%s-store" (include "kongbot.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}
