{{/*
Refuse values that would break the Pod Security Standard "restricted" (the default of many clusters,
and of scripts/local-k8s). The API server only *warns* when a Deployment's pod template breaks it;
the ReplicaSet then never creates a pod and `helm install --wait` times out without saying why.
So the chart fails up front and names the value to change. The rules are those of
https://kubernetes.io/docs/concepts/security/pod-security-standards/ (restricted, latest) for the
fields the chart lets users set; tests/k8s checks each one against a real API server.
*/}}
{{- define "pkc.validateRestricted" -}}
{{- $pod := default (dict) .Values.podSecurityContext }}
{{- $ctr := default (dict) .Values.securityContext }}
{{- $why := "Pod Security \"restricted\" would refuse the pod" }}
{{- if hasKey $ctr "runAsNonRoot" }}
{{- if not $ctr.runAsNonRoot }}
{{- fail (printf "securityContext.runAsNonRoot must be true: %s (it may run as root)" $why) }}
{{- end }}
{{- else if not $pod.runAsNonRoot }}
{{- fail (printf "podSecurityContext.runAsNonRoot (or securityContext.runAsNonRoot) must be true: %s (it may run as root)" $why) }}
{{- end }}
{{- range $name, $sc := dict "podSecurityContext" $pod "securityContext" $ctr }}
{{- if and (hasKey $sc "runAsUser") (eq (toString $sc.runAsUser) "0") }}
{{- fail (printf "%s.runAsUser must not be 0: %s (it runs as root)" $name $why) }}
{{- end }}
{{- $seccomp := default (dict) $sc.seccompProfile }}
{{- if and $seccomp.type (not (has $seccomp.type (list "RuntimeDefault" "Localhost"))) }}
{{- fail (printf "%s.seccompProfile.type must be RuntimeDefault or Localhost, not %s: %s" $name $seccomp.type $why) }}
{{- end }}
{{- end }}
{{- $podSeccomp := default (dict) $pod.seccompProfile }}
{{- $ctrSeccomp := default (dict) $ctr.seccompProfile }}
{{- if not (or $podSeccomp.type $ctrSeccomp.type) }}
{{- fail (printf "podSecurityContext.seccompProfile.type (or securityContext.seccompProfile.type) must be set to RuntimeDefault: %s" $why) }}
{{- end }}
{{- if $ctr.privileged }}
{{- fail (printf "securityContext.privileged must be false: %s" $why) }}
{{- end }}
{{- if not (and (hasKey $ctr "allowPrivilegeEscalation") (eq (toString $ctr.allowPrivilegeEscalation) "false")) }}
{{- fail (printf "securityContext.allowPrivilegeEscalation must be false: %s" $why) }}
{{- end }}
{{- $caps := default (dict) $ctr.capabilities }}
{{- if not (has "ALL" (default (list) $caps.drop)) }}
{{- fail (printf "securityContext.capabilities.drop must contain ALL: %s" $why) }}
{{- end }}
{{- range default (list) $caps.add }}
{{- if ne . "NET_BIND_SERVICE" }}
{{- fail (printf "securityContext.capabilities.add may only contain NET_BIND_SERVICE, not %s: %s" . $why) }}
{{- end }}
{{- end }}
{{- if and $ctr.procMount (ne $ctr.procMount "Default") }}
{{- fail (printf "securityContext.procMount must be Default: %s" $why) }}
{{- end }}
{{- $allowed := list "configMap" "csi" "downwardAPI" "emptyDir" "ephemeral" "persistentVolumeClaim" "projected" "secret" }}
{{- range $i, $volume := .Values.extraVolumes }}
{{- range $type, $_ := omit $volume "name" }}
{{- if not (has $type $allowed) }}
{{- fail (printf "extraVolumes[%d] (%s) is a %s volume: %s (it allows only %s)" $i (default "" $volume.name) $type $why (join ", " $allowed)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
