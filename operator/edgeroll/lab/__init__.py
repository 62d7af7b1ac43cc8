"""edgeroll.lab"""
