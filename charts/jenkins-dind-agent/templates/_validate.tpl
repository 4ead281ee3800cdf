{{/*
Cross-field rules values.schema.json cannot express. Every message names the key.
*/}}
{{- define "jda.validate" -}}
{{- $a := .Values.agent -}}
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
