"""Regenerate the upstream facts the tests check the chart against (plugin lock, JCasC attributes).

These modules read the upstream sources (git snapshots of jenkinsci/bom, the plugins, Jenkins core)
and write the YAML data files under tests/unit/data/upstream/ and the chart's plugin lock. They are
run by hand when a pin moves (see the repository README, "Moving a pin"); the tests only read their
output.
"""
