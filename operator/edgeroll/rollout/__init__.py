"""edgeroll.rollout"""
