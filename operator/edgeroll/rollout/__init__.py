"""Rollout: the edge resources a revision needs, the plan that decides where it goes, and the executor.

- resources.py  pure builder of the edge cache's Deployment, Service, Secret, ServiceAccount
- drift.py      pure comparison of desired and live objects (what a resync puts back)
- health.py     pure reading of a Deployment's rollout health and phase
- planner.py    pure decisions: which cluster gets which digest now (AllAtOnce; waves plug in here)
- executor.py   applies a plan to edge clusters through the EdgeApi seam
- reconciler.py one RouterConfig, end to end: gather, render, publish, plan, execute, status
- status.py     pure status model: conditions, per-cluster phases, summary
"""
