#!/bin/sh
# `helm test` body, run in the jnlp container of the agent pod spec once dockerd answers.
set -eu
if [ -d /jda-test ]; then trap 'touch /jda-test/done' EXIT; fi
driver=$(docker info --format '{{.Driver}}')
echo "dockerd storage driver: $driver (expected: $EXPECTED_STORAGE_DRIVER)"
if [ "$EXPECTED_STORAGE_DRIVER" != "auto" ] && [ "$driver" != "$EXPECTED_STORAGE_DRIVER" ]; then
  echo "FAIL: dockerd runs on $driver, not $EXPECTED_STORAGE_DRIVER" >&2
  exit 1
fi
ctx=$(mktemp -d)
cp /jda-test-files/Dockerfile "$ctx/Dockerfile"
echo "building the multi-stage sample with --network host from $BASE_IMAGE"
docker build --network host --build-arg BASE_IMAGE="$BASE_IMAGE" -t jda-helm-test:run "$ctx"
out=$(docker run --rm jda-helm-test:run)
echo "image says: $out"
case "$out" in
  *"built in stage one"*) echo "PASS: multi-stage build works in the dind agent pod" ;;
  *) echo "FAIL: unexpected output from the built image" >&2; exit 1 ;;
esac
if [ -n "${PUSH_REGISTRY:-}" ]; then
  ref="$PUSH_REGISTRY/jda-helm-test:$(date +%s)-$$"
  echo "pushing to $ref"
  docker tag jda-helm-test:run "$ref"
  docker push "$ref"
  digest=$(docker inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$ref" | grep "^$PUSH_REGISTRY/jda-helm-test@" | head -n 1)
  if [ -z "$digest" ]; then echo "FAIL: no digest for $ref after the push" >&2; exit 1; fi
  docker rmi "$ref" jda-helm-test:run >/dev/null
  echo "pulling back by digest: $digest"
  docker pull "$digest"
  again=$(docker run --rm "$digest")
  if [ "$again" != "$out" ]; then echo "FAIL: the image pulled by digest says: $again" >&2; exit 1; fi
  echo "PASS: pushed to $PUSH_REGISTRY and pulled back by digest ($digest)"
fi
