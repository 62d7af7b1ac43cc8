"""edgeroll.cache"""
