"""The local lab: a hub plus edge clusters `edge-eu`, `edge-us`, `edge-ap`, and S3, on loopback.

Each cluster is a real control plane (etcd, kube-apiserver, controller-manager,
scheduler, kwok controller) started by `kwokctl --runtime binary` from the
binaries `make setup` builds, with two fake nodes so Deployments become
Available. S3 is one SeaweedFS `weed mini` process. Everything lives under
`<repo>/.lab/` and binds 127.0.0.1 only.

Command line: `edgeroll lab up | down | status` (`make lab-up`, `make lab-down`).

Python API, for tests, benchmarks and the demo::

    from edgeroll.lab import Lab, up, down

    lab = up().lab                # start, or reuse a healthy lab (idempotent)
    lab = Lab.load()              # the running lab, without starting anything

    lab.hub_kubeconfig            # Path
    lab.edge_kubeconfigs          # {"edge-eu": Path, "edge-us": Path, "edge-ap": Path}
    lab.edge_labels               # {"edge-eu": {"region": "eu", "tier": "edge"}, ...}
    lab.kubeconfig("edge-eu")     # any cluster's kubeconfig, "hub" included
    lab.s3_endpoint, lab.s3_bucket, lab.access_key, lab.secret_key, lab.region
    lab.bin_dir                   # kubectl, helm, kubeconform, ... built by `make setup`
    lab.env()                     # what .lab/env exports, as a dict
    lab.s3_client()               # boto3 client, checksums "when_required"
    lab.kubectl("edge-eu", "apply", "-f", "-", input=yaml_text)   # CompletedProcess[str];
                                  # raises KubectlError unless check=False

    # Fault injection (each call returns once the change is observable):
    lab.stop_s3(); lab.start_s3()                      # same ports, same data
    lab.stop_apiserver("edge-us"); lab.start_apiserver("edge-us")

In pytest, use the session-scoped `lab` fixture from tests/conftest.py; it
reuses a running lab and tears down only a lab it started itself.

`up` returns an `UpReport`: `.lab`, `.started`, `.reused`, `.seconds`, and
`.fresh` (nothing was running before). `down` stops exactly the processes the
lab started, by PID, and checks that none of the lab's ports still listens.
"""

from __future__ import annotations

from edgeroll.lab.handle import KubectlError, Lab
from edgeroll.lab.lifecycle import DownReport, UpReport, down, status, up
from edgeroll.lab.processes import LabError

__all__ = ["DownReport", "KubectlError", "Lab", "LabError", "UpReport", "down", "status", "up"]
