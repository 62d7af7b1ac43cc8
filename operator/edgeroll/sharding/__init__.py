"""Several operator replicas, one owner per RouterConfig: shards held through Leases.

`shards` and `leases` are pure (which shard a RouterConfig is in, what a replica does in one election
round); `elector` is the I/O loop that reads and writes the Lease objects.
"""
