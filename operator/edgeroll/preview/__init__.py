"""`edgeroll plan`: what applying a RouterConfig would do, read from the hub, written nowhere.

- reader.py  the reads (EdgeClusters, the RouterConfig on the hub, ConfigMaps), through the operator's
             own gather and render steps (edgeroll.pipeline.gather)
- model.py   the preview, pure: waves from the planner (plan_membership), digests, what each serves
- diff.py    changed JSON paths between two renders, values cut to a width
- output.py  text and JSON
- cli.py     the command

An import-linter contract (pyproject.toml) keeps it from importing anything that writes: the
publisher, the reconciler, the executor, kopf.
"""
