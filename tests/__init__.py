"""Makes `tests` a package so `from tests.polling import wait_until` works from any suite.

Subfolders stay plain directories (no __init__.py): their test files import
sibling helpers by bare name (`from cache_itkit import ...`).
"""
