"""Rollout: the edge resources a revision needs, the plan that decides where it goes, and the executor.

- resources.py  pure builder of the edge cache's Deployment, Service, Secret, ServiceAccount
- drift.py      pure comparison of desired and live objects (what a resync puts back)
- health.py     pure reading of a Deployment's rollout health and phase
- policy.py     pure wave split of spec.rollout (the models are in edgeroll.api.rollout)
- planner.py    pure decisions: waves, soak, deadlines, budget, rollback, commands, supersede
- commands.py   pure parsing and writing of the rollout command annotations
- executor.py   applies a plan to edge clusters through the EdgeApi seam
- reconciler.py one RouterConfig, end to end: gather, render, publish, plan, persist, execute, status
- status.py     pure status model: conditions, per-cluster phases, summary
- controller.py scheduling, locking and write-free status patches per RouterConfig
- cli.py        `edgeroll rollout pause|resume|promote|abort|undo|retry|status`
"""
