"""edgeroll.clusters"""
