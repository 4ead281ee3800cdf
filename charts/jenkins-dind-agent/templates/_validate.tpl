{{/*
Cross-field rules values.schema.json cannot express. Every message names the key.
*/}}
{{/* A Kubernetes quantity ("500m", "2", "1.5Gi", "512M") as a float, for comparisons. */}}
{{- define "jda.quantity" -}}
{{- $q := toString . -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $q -}}
{{- $units := dict "m" 0.001 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 "P" 1000000000000000.0 "E" 1000000000000000000.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 -}}
{{- $suffix := trimPrefix $num $q -}}
{{- mulf (float64 $num) (default 1.0 (get $units $suffix)) -}}
{{- end -}}

{{- define "jda.validate" -}}
{{- $a := .Values.agent -}}
{{- $containers := dict "controller.resources" .Values.controller.resources "agent.jnlp.resources" $a.jnlp.resources "agent.dind.resources" $a.dind.resources "mirror.resources" .Values.mirror.resources -}}
{{- range $key := keys $containers | sortAlpha -}}
{{- $res := index $containers $key | default dict -}}
{{- $requests := $res.requests | default dict -}}
{{- $limits := $res.limits | default dict -}}
{{- range $r := list "cpu" "memory" "ephemeral-storage" -}}
{{- if and (hasKey $requests $r) (hasKey $limits $r) -}}
{{- if gt (include "jda.quantity" (index $requests $r) | float64) (include "jda.quantity" (index $limits $r) | float64) -}}
{{- fail (printf "%s.requests.%s (%v) is larger than %s.limits.%s (%v): the API server refuses a request above its limit" $key $r (index $requests $r) $key $r (index $limits $r)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if eq (int .Values.controller.agentListener.port) 8080 -}}
{{- fail "controller.agentListener.port is 8080, the port of Jenkins' own HTTP listener in the controller container: pick another port" -}}
{{- end -}}
{{- if and .Values.mirror.enabled (has (include "jda.mirrorUrl" .) $a.dind.registryMirrors) -}}
{{- fail "agent.dind.registryMirrors lists the chart's own mirror, which mirror.enabled already adds: remove it" -}}
{{- end -}}
{{- if and $a.registry.push (not $a.registry.server) -}}
{{- fail "agent.registry.push is true but agent.registry.server is empty: set the registry host[:port] the agents push to" -}}
{{- end -}}
{{- if and $a.registry.push (not $a.registry.secretName) -}}
{{- fail "agent.registry.push is true but agent.registry.secretName is empty: name a kubernetes.io/dockerconfigjson Secret in the agent namespace" -}}
{{- end -}}
{{- if and $a.namespace.create (not $a.namespace.name) -}}
{{- fail "agent.namespace.create is true but agent.namespace.name is empty: name the namespace to create" -}}
{{- end -}}
{{- if and $a.namespace.create (eq $a.namespace.name .Release.Namespace) -}}
{{- fail (printf "agent.namespace.create is true but agent.namespace.name (%s) is the release namespace, which already exists" $a.namespace.name) -}}
{{- end -}}
{{- if and $a.dind.prewarm.enabled (not $a.dind.prewarm.images) -}}
{{- fail "agent.dind.prewarm.enabled is true but agent.dind.prewarm.images is empty: list the images baked into agent.dind.image" -}}
{{- end -}}
{{- if gt (int $a.instanceCap) (int $a.containerCap) -}}
{{- fail (printf "agent.instanceCap (%d) is larger than agent.containerCap (%d): the cloud would never start that many pods" (int $a.instanceCap) (int $a.containerCap)) -}}
{{- end -}}
{{- if and (eq (toString $a.nativeSidecar) "true") (not (semverCompare ">=1.29-0" .Capabilities.KubeVersion.Version)) -}}
{{- fail (printf "agent.nativeSidecar is true but the cluster runs Kubernetes %s; native sidecars need 1.29 or newer (use auto or false)" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- $ids := dict -}}
{{- range .Values.controller.additionalPlugins -}}
{{- $id := index (splitList ":" .) 0 -}}
{{- if hasKey $ids $id -}}
{{- fail (printf "controller.additionalPlugins lists plugin %s twice (%s and %s): keep one pin per plugin" $id (get $ids $id) .) -}}
{{- end -}}
{{- $_ := set $ids $id . -}}
{{- end -}}
{{- if and .Values.controller.persistence.existingClaim (not .Values.controller.persistence.enabled) -}}
{{- fail "controller.persistence.existingClaim is set but controller.persistence.enabled is false: enable persistence or drop the claim" -}}
{{- end -}}
{{- end -}}
