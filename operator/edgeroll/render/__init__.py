"""Rendering: canonical bytes, overlays, formats, digests and signatures."""
