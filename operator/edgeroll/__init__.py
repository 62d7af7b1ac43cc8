"""edgeroll: roll out signed router configs to edge clusters, wave by wave."""

__version__ = "0.1.0"
