"""jdagent.engine.buildcache reads BuildKit's plain progress output to say which steps ran. The Docker and
cluster tiers run it on real builds; here its reading of the three shapes a step takes in that output: run
(the marker among its output lines), CACHED, and taken from a remote cache by downloading its layer."""

from __future__ import annotations

import pytest

from jdagent.engine.buildcache import (
    FROM_BUILD,
    LAST,
    SLOW_FINAL,
    SLOW_STAGE,
    BuildCacheError,
    cache_dockerfile,
    step_marked_cached,
    step_ran,
)

OUTPUT = f"""#7 [build 2/2] {SLOW_STAGE}
#7 4.012 ran: build stage
#7 DONE 4.1s

#8 [stage-1 2/4] {SLOW_FINAL}
#8 sha256:c1a2a1fc4d9b275a05c418a41c9878a493887fa855ede156a51ea93453d1af1f 1.10MB / 1.10MB 0.1s done
#8 extracting sha256:c1a2a1fc4d9b275a05c418a41c9878a493887fa855ede156a51ea93453d1af1f 0.0s done
#8 DONE 0.2s

#9 [stage-1 3/4] {LAST}
#9 CACHED

#10 [stage-1 4/4] {FROM_BUILD}
#10 DONE 0.0s
"""


def test_a_run_step_ran_when_its_marker_is_among_its_lines():
    assert step_ran(OUTPUT, SLOW_STAGE) is True
    assert step_marked_cached(OUTPUT, SLOW_STAGE) is False


def test_a_layer_downloaded_from_the_cache_is_not_a_run():
    assert step_ran(OUTPUT, SLOW_FINAL) is False
    assert step_marked_cached(OUTPUT, SLOW_FINAL) is False


def test_copy_steps_ran_unless_cached():
    assert step_ran(OUTPUT, LAST) is False and step_marked_cached(OUTPUT, LAST) is True
    assert step_ran(OUTPUT, FROM_BUILD) is True


def test_a_missing_step_is_an_error_not_a_guess():
    with pytest.raises(BuildCacheError, match="no step"):
        step_ran(OUTPUT.replace(SLOW_STAGE, "RUN true"), SLOW_STAGE)


def test_the_dockerfile_puts_the_apps_file_before_the_build_output():
    lines = cache_dockerfile("base:1").splitlines()
    assert lines.index(LAST) < lines.index(FROM_BUILD) == len(lines) - 1
    assert lines[0] == "FROM base:1 AS build" and SLOW_STAGE in lines
