"""Rollout: the planner's pure decisions about a revision's edge objects and where it goes next.

What runs these decisions against the hub, the edges and S3 is edgeroll.pipeline; nothing here
imports it (import-linter contracts in pyproject.toml).

- resources.py    pure builder of the edge cache's Deployment, Service, Secret, ServiceAccount
- drift.py        pure comparison of desired and live objects (what a resync puts back)
- ownership.py    pure check of who owns an edge object (no write over another's)
- health.py       pure reading of a Deployment's rollout health and phase
- policy.py       pure wave split of spec.rollout (the models are in edgeroll.api.rollout)
- planner.py      pure decisions: waves, soak, deadlines, budget, rollback, commands, supersede
- commands.py     pure parsing and writing of the rollout command annotations
- image_policy.py pure check of spec.cache.image against the operator's allow-list
- cli.py          `edgeroll rollout pause|resume|promote|abort|undo|retry|status`: a client of the
                  hub, not part of the reconcile. It writes spec.rollout.paused and the command
                  annotations (commands.py) and reads status.rollout, so it lives with the
                  vocabulary it speaks; its kube client is imported only when it talks.
"""
