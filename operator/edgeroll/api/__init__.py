"""edgeroll.api"""
