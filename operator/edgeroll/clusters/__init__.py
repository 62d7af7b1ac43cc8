"""EdgeCluster registry: one client per EdgeCluster from its kubeconfig Secret, cached, probed."""
