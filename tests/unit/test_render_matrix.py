"""Every ci/ values file renders with helm 3 and helm 4 and every object (the JCasC agent pod too)
validates strictly against real Kubernetes schemas."""

from __future__ import annotations

import pytest

from jdagent.chart.kubeschema import CLASSIC_VERSIONS, NATIVE_VERSIONS, validation_errors
from jdagent.chart.manifest import is_native_sidecar
from jdagent.chart.render import render
from tests.conftest import CI_VALUES, RENDER_CASES, ci_ids


@pytest.mark.parametrize("values", RENDER_CASES, ids=ci_ids(RENDER_CASES))
def test_ci_values_render_with_both_helm_majors(values, helm_major):
    manifest = render(values=values, helm=helm_major)
    kinds = {o["kind"] for o in manifest}
    assert {"StatefulSet", "ConfigMap", "Service", "Role", "RoleBinding", "ServiceAccount"} <= kinds
    assert manifest.agent_pod()["kind"] == "Pod"


def test_both_helm_majors_render_the_same_objects():
    by_major = {m: render(values=CI_VALUES[0], helm=m, kube_version="1.33.0") for m in ("3", "4")}
    names = {m: sorted((o["kind"], o["metadata"]["name"]) for o in man) for m, man in by_major.items()}
    assert names["3"] == names["4"]
    assert by_major["3"].agent_pod() == by_major["4"].agent_pod()


@pytest.mark.parametrize("version", NATIVE_VERSIONS)
@pytest.mark.parametrize("values", RENDER_CASES, ids=ci_ids(RENDER_CASES))
def test_objects_validate_strictly(values, version):
    manifest = render(values=values, kube_version=version)
    objects = [*manifest.objects, manifest.agent_pod()]
    assert validation_errors(objects, version) == []


@pytest.mark.parametrize("version", CLASSIC_VERSIONS)
@pytest.mark.parametrize("values", CI_VALUES, ids=ci_ids(CI_VALUES))
def test_old_clusters_get_the_classic_path_and_validate(values, version):
    manifest = render(values=values, kube_version=version)
    spec = manifest.agent_pod()["spec"]
    assert not is_native_sidecar(spec, "dind")
    assert validation_errors([*manifest.objects, manifest.agent_pod()], version) == []


def test_native_sidecar_pod_is_invalid_on_the_oldest_schema():
    """Guards the reason for the classic path: 1.27 has no restartPolicy on init containers
    (1.28 has the field, but only behind an alpha feature gate)."""
    manifest = render(kube_version="1.33.0")
    errors = validation_errors([manifest.agent_pod()], "1.27.0")
    assert any("restartPolicy" in e for e in errors)


@pytest.mark.parametrize("version", ["1.27.0", "1.33.0", "v1.37.0"])
def test_the_cached_validator_answers_as_kubernetes_validate_does(version):
    """validation_errors reads the library's schema files once; its verdicts must stay the library's."""
    import copy

    import kubernetes_validate

    from jdagent.chart.kubeschema import strict_validator

    manifest = render(kube_version=version.removeprefix("v"))
    pod = manifest.agent_pod()
    broken = copy.deepcopy(pod)
    broken["spec"]["containers"][0]["imagePullPolicy"] = 7
    broken["spec"]["notAField"] = True
    rbac = manifest.get("Role")
    refused = []
    for obj in [*manifest.objects, pod, broken, rbac]:
        ours = list(strict_validator(version, obj["apiVersion"], obj["kind"]).iter_errors(obj))
        try:
            kubernetes_validate.validate(obj, version, strict=True)
            theirs = None
        except kubernetes_validate.ValidationError as exc:
            theirs = exc
        assert (ours == []) == (theirs is None), (obj["kind"], ours, theirs)
        if theirs is not None:
            assert theirs.message in {e.message for e in ours}
            refused.append(theirs.message)
    [error] = validation_errors([broken], version)
    assert refused and error.endswith(refused[0])
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        strict_validator(version, "example.com/v1", "Widget")
