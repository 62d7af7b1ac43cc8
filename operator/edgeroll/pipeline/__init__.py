"""Pipeline: the reconcile of one RouterConfig as named steps, and the loops that run it.

The layout shows two packages. edgeroll.rollout holds the planner's pure decisions (what the edge
objects are, where a revision goes next, what a command means); this package is the I/O that runs
them: it reads the hub and the edges, renders and publishes, asks the planner, carries out its
actions and reports. It is the one layer that brings the planner and the adapters (clusters,
publish, render) together; the planner never imports it (import-linter contracts in
pyproject.toml), and only the kopf wiring (edgeroll.handlers) imports it.

- reconciler.py one RouterConfig, end to end, as steps: parse, gather, render, publish, observe,
                plan, apply (status.rollout persisted before its first write), report, retention
- controller.py the per-object loops: scheduling, locking, backoff, write-free status patches
- executor.py   carries out the plan's actions in one edge cluster: compare, then apply; or remove
- fence.py      the plan on record before the first write of its actions, and only when one writes
- status.py     pure status model built from what a reconcile found and did: conditions,
                per-cluster phases, summary
"""
