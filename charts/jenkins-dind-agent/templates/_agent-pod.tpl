{{/*
THE agent pod spec. One template, three users:
  - the JCasC pod template embeds it through `yaml:` (mode "agent"),
  - the `helm test` pod includes it (mode "test"),
  - the local Docker runner reads it back from the rendered JCasC.
Call with (dict "root" $ "mode" "agent"|"test").

Container layout:
  initContainers: docker-setup (copies the dind image's static docker CLI and plugins into a
                  shared volume for jnlp, writes dockerd's daemon.json), then on Kubernetes >= 1.29
                  dind as a native sidecar (restartPolicy Always + startupProbe on `docker info`)
  containers:     jnlp (Docker CLI, DOCKER_HOST=tcp://localhost:2375), and on older clusters dind
                  as a regular container with the agent polling for dockerd first.
*/}}

{{/* dockerd arguments. The first argument is "dockerd" on purpose: the docker:dind entrypoint
only adds its own --host=tcp://0.0.0.0:2375 when the first argument is a flag. */}}
{{- define "jda.dind.args" -}}
{{- $d := .Values.agent.dind -}}
- dockerd
- --host=tcp://127.0.0.1:2375
- --host=unix:///var/run/docker.sock
- --tls=false
- --config-file=/etc/docker-jda/daemon.json
- --ip6tables=false
{{- if ne $d.storageDriver "auto" }}
- --storage-driver={{ $d.storageDriver }}
{{- end }}
{{- if gt (int $d.mtu) 0 }}
- --mtu={{ int $d.mtu }}
- --default-network-opt=bridge=com.docker.network.driver.mtu={{ int $d.mtu }}
{{- end }}
{{- if .Values.mirror.enabled }}
- --registry-mirror={{ include "jda.mirrorUrl" . }}
{{- end }}
{{- range $d.registryMirrors }}
- --registry-mirror={{ . }}
{{- end }}
{{- range $d.insecureRegistries }}
- --insecure-registry={{ . }}
{{- end }}
{{- range $d.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* daemon.json written by docker-setup. A configured graph driver must not be silently
replaced by the containerd image store (the default of fresh Docker 29+ daemons). */}}
{{- define "jda.dind.daemonJson" -}}
{{- if eq .Values.agent.dind.storageDriver "auto" -}}
{}
{{- else -}}
{{- dict "features" (dict "containerd-snapshotter" false) | toJson -}}
{{- end -}}
{{- end -}}

{{/* The shell condition "dockerd is ready": it answers and, when prewarmed, lists every baked-in image. */}}
{{- define "jda.dockerdReady" -}}
{{- $p := .Values.agent.dind.prewarm -}}
docker version >/dev/null 2>&1
{{- if $p.enabled }} && docker image inspect {{ join " " $p.images }} >/dev/null 2>&1{{ end }}
{{- end -}}

{{/* Bounded, fast (0.2 s) poll until dockerd is ready, then exec "$@". Plain $VAR only:
JCasC would interpolate brace-style variables. */}}
{{- define "jda.waitForDockerd" -}}
n=0; limit={{ mul (int .Values.agent.dind.readyTimeoutSeconds) 5 }}; until {{ include "jda.dockerdReady" . }}; do n=$((n+1)); if [ "$n" -ge "$limit" ]; then echo "jenkins-dind-agent: dockerd did not answer on $DOCKER_HOST within {{ int .Values.agent.dind.readyTimeoutSeconds }}s; check the dind container (is it allowed to run privileged?)" >&2; exit 1; fi; sleep 0.2; done; echo "jenkins-dind-agent: dockerd is ready on $DOCKER_HOST"; exec "$@"
{{- end -}}

{{- define "jda.dind.container" -}}
{{- $root := .root -}}
{{- $d := $root.Values.agent.dind -}}
- name: dind
  image: {{ include "jda.image" $d.image | quote }}
  imagePullPolicy: {{ $d.image.pullPolicy }}
  {{- if .native }}
  restartPolicy: Always
  {{- end }}
  {{- if .watchDone }}
  command:
    - /bin/sh
    - -c
    - '/bin/sh /jda-dind/dind-start.sh dockerd-entrypoint.sh "$@" & pid=$!; while [ ! -e /jda-test/done ] && kill -0 $pid 2>/dev/null; do sleep 0.5; done; kill $pid 2>/dev/null; wait $pid; exit 0'
    - jda-dind
  {{- else }}
  # files/dind-start.sh: cgroup nesting and MTU, then the image's own entrypoint
  command: ["/bin/sh", "/jda-dind/dind-start.sh", "dockerd-entrypoint.sh"]
  {{- end }}
  args:
    {{- include "jda.dind.args" $root | nindent 4 }}
  env:
    - name: DOCKER_TLS_CERTDIR
      value: ""
    - name: DOCKER_HOST
      value: tcp://127.0.0.1:2375
    - name: JDA_MTU
      value: {{ if gt (int $d.mtu) 0 }}"static"{{ else }}"auto"{{ end }}
    {{- if $d.prewarm.enabled }}
    - name: JDA_PREWARM
      value: "1"
    - name: JDA_STORAGE_DRIVER
      value: {{ $d.storageDriver | quote }}
    {{- end }}
  securityContext:
    privileged: true
  {{- if $d.prewarm.enabled }}
  lifecycle:
    # Images baked as a data root for this driver are there when dockerd answers (dind-start.sh);
    # otherwise load the baked archives as soon as dockerd answers. The container counts as started
    # (and, as a native sidecar, lets jnlp start) only once this hook has finished.
    postStart:
      exec:
        command:
          - /bin/sh
          - -c
          - 'test -d /var/lib/jda-prewarm/data-root/$JDA_STORAGE_DRIVER && exit 0; n=0; until docker version >/dev/null 2>&1; do n=$((n+1)); [ "$n" -lt 600 ] || exit 1; sleep 0.1; done; for f in /opt/jda-prewarm/*.tar; do [ -e "$f" ] || continue; docker load -q -i "$f" || exit 1; done'
  {{- end }}
  {{- if .native }}
  startupProbe:
    exec:
      {{- if $d.prewarm.enabled }}
      command: ["/bin/sh", "-c", {{ include "jda.dockerdReady" $root | quote }}]
      {{- else }}
      command: ["docker", "version"]
      {{- end }}
    periodSeconds: 1
    timeoutSeconds: 5
    failureThreshold: {{ int $d.readyTimeoutSeconds }}
  {{- end }}
  resources:
    {{- toYaml $d.resources | nindent 4 }}
  volumeMounts:
    - name: docker-data
      mountPath: /var/lib/docker
    - name: dind-config
      mountPath: /etc/docker-jda
      readOnly: true
    - name: dind-start
      mountPath: /jda-dind
      readOnly: true
    {{- if .watchDone }}
    - name: test-state
      mountPath: /jda-test
    {{- end }}
{{- end -}}

{{- define "jda.agentPodSpec" -}}
{{- $root := .root -}}
{{- $test := eq .mode "test" -}}
{{- $native := eq (include "jda.nativeSidecar" $root) "true" -}}
{{- $a := $root.Values.agent -}}
{{- $d := $a.dind -}}
{{- $auth := and $a.registry.secretName (not $test) -}}
{{- $dindCtx := dict "root" $root "native" $native "watchDone" (and $test (not $native)) -}}
restartPolicy: Never
securityContext:
  # applies to jnlp and docker-setup; the privileged dind container runs unconfined regardless
  seccompProfile:
    type: RuntimeDefault
automountServiceAccountToken: {{ $a.automountServiceAccountToken }}
serviceAccountName: {{ include "jda.agentServiceAccount" $root }}
enableServiceLinks: false
{{- with $a.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $a.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
initContainers:
  - name: docker-setup
    image: {{ include "jda.image" $d.image | quote }}
    imagePullPolicy: {{ $d.image.pullPolicy }}
    command:
      - /bin/sh
      - -ec
      - |
        mkdir -p /cli/bin /cli/cli-plugins
        cp -L /usr/local/bin/docker /cli/bin/docker
        for p in /usr/local/libexec/docker/cli-plugins/*; do
          if [ -e "$p" ]; then cp -L "$p" /cli/cli-plugins/; fi
        done
        printf '%s\n' "$DAEMON_JSON" > /dind-config/daemon.json
        echo "docker CLI and plugins copied: $(ls /cli/bin /cli/cli-plugins | tr '\n' ' ')"
    env:
      - name: DAEMON_JSON
        value: {{ include "jda.dind.daemonJson" $root | quote }}
    securityContext:
      runAsUser: 1000
      runAsGroup: 1000
      runAsNonRoot: true
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: ["ALL"]
      seccompProfile:
        type: RuntimeDefault
    resources:
      requests:
        cpu: 50m
        memory: 32Mi
      limits:
        # a burst for the ~120 MB copy; an init container's limit adds nothing to the pod's requests
        cpu: "1"
        memory: 64Mi
    volumeMounts:
      - name: docker-cli
        mountPath: /cli
      - name: dind-config
        mountPath: /dind-config
  {{- if $native }}
  {{- include "jda.dind.container" $dindCtx | nindent 2 }}
  {{- end }}
containers:
  - name: jnlp
    image: {{ include "jda.image" $a.jnlp.image | quote }}
    imagePullPolicy: {{ $a.jnlp.image.pullPolicy }}
    {{- if or $test (not $native) }}
    command:
      - /bin/sh
      - -c
      - {{ include "jda.waitForDockerd" $root | quote }}
      - jda-wait
      {{- if $test }}
      - /bin/sh
      - /jda-test-files/helm-test.sh
      {{- else }}
      - /usr/local/bin/jenkins-agent
      {{- end }}
    {{- end }}
    env:
      - name: DOCKER_HOST
        value: tcp://localhost:2375
      - name: PATH
        value: /usr/local/lib/docker/bin:/opt/java/openjdk/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
      {{- if $test }}
      - name: EXPECTED_STORAGE_DRIVER
        value: {{ $d.storageDriver | quote }}
      - name: BASE_IMAGE
        value: {{ $root.Values.exampleJob.baseImage | quote }}
      {{- end }}
    securityContext:
      runAsUser: 1000
      runAsGroup: 1000
      runAsNonRoot: true
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: ["ALL"]
      seccompProfile:
        type: RuntimeDefault
    resources:
      {{- toYaml $a.jnlp.resources | nindent 6 }}
    volumeMounts:
      - name: workspace-volume
        mountPath: /home/jenkins/agent
      - name: docker-cli
        mountPath: /usr/local/lib/docker
        readOnly: true
      - name: docker-config
        mountPath: /home/jenkins/.docker
      - name: tmp
        mountPath: /tmp
      {{- if $auth }}
      - name: registry-auth
        mountPath: /home/jenkins/.docker/config.json
        subPath: config.json
        readOnly: true
      {{- end }}
      {{- if $test }}
      - name: test-files
        mountPath: /jda-test-files
        readOnly: true
      {{- if not $native }}
      - name: test-state
        mountPath: /jda-test
      {{- end }}
      {{- end }}
  {{- if not $native }}
  {{- include "jda.dind.container" $dindCtx | nindent 2 }}
  {{- end }}
volumes:
  - name: workspace-volume
    emptyDir: {}
  - name: docker-cli
    emptyDir:
      sizeLimit: 256Mi
  - name: docker-config
    emptyDir:
      sizeLimit: 16Mi
  - name: dind-config
    emptyDir:
      sizeLimit: 1Mi
  - name: dind-start
    configMap:
      name: {{ include "jda.fullname" $root }}-agent
  - name: tmp
    emptyDir:
      sizeLimit: 1Gi
  - name: docker-data
    emptyDir:
      sizeLimit: {{ $d.dataSizeLimit }}
  {{- if $auth }}
  - name: registry-auth
    secret:
      secretName: {{ $a.registry.secretName }}
      items:
        - key: .dockerconfigjson
          path: config.json
  {{- end }}
  {{- if $test }}
  - name: test-files
    configMap:
      name: {{ include "jda.fullname" $root }}-helm-test
  {{- if not $native }}
  - name: test-state
    emptyDir:
      sizeLimit: 1Mi
  {{- end }}
  {{- end }}
{{- end -}}
