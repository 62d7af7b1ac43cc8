"""edgeroll.publish"""
