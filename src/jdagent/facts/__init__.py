"""Upstream facts: read the upstream sources at their pinned tags (jenkinsci/bom, plugins, Jenkins core,
moby, CRDs, Halyard) and write tests/unit/data/upstream/ and the plugin lock. Run by hand when a pin
moves (README, "Moving a pin"); the tests only read their output.

May import `jdagent.chart` (to compare what it renders and locks) and tooling; never the engine or
cluster layers."""
