"""A stopped lab whose recorded ports another program took meanwhile (another checkout's lab, on the
same machine): `up` recreates the cluster at once instead of letting kwokctl wait minutes for
components that cannot bind, and `down` does not fail on ports that are no longer its own.

Seen while two checkouts' labs ran side by side: `make lab-up` in the first, stopped, spent 180 s per
cluster in `kwokctl start cluster` (etcd: "bind: address already in use"), then `make lab-down`
failed with "lab stopped but these ports still listen" naming the other lab's ports.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeroll.lab import lifecycle
from edgeroll.lab.kwok import KwokCluster
from edgeroll.lab.layout import LabPaths
from edgeroll.lab.processes import listener_pids

pytestmark = pytest.mark.unit


@pytest.fixture
def listener() -> Iterator[int]:
    """A port this test process listens on: to the lab, another program."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_listener_pids_names_the_process_that_listens(listener: int) -> None:
    assert os.getpid() in listener_pids(listener)
    assert listener_pids(free_port()) == set()


def cluster_on_disk(tmp_path: Path, ports: dict[str, int]) -> KwokCluster:
    paths = LabPaths(tmp_path)
    kwok = KwokCluster("hub", paths, tmp_path / "bin")
    kwok.workdir.mkdir(parents=True)
    options = "\n".join(f"  {key}: {port}" for key, port in ports.items())
    (kwok.workdir / "kwok.yaml").write_text(f"kind: KwokctlConfiguration\noptions:\n{options}\n")
    kwok.kubeconfig.write_text("")
    return kwok


def test_up_sees_recorded_ports_held_by_another_program(tmp_path: Path, listener: int) -> None:
    idle = free_port()
    kwok = cluster_on_disk(tmp_path, {"etcdPort": idle, "kubeApiserverPort": listener})

    taken = lifecycle._ports_taken_by_others(kwok)

    assert len(taken) == 1 and taken[0].startswith(f"kube-apiserver:{listener} (pid ")


def test_up_restarts_in_place_when_its_ports_are_free(tmp_path: Path) -> None:
    kwok = cluster_on_disk(tmp_path, {"etcdPort": free_port(), "kubeApiserverPort": free_port()})

    assert lifecycle._ports_taken_by_others(kwok) == []


def test_down_does_not_wait_for_a_port_another_program_holds_now(tmp_path: Path, listener: int) -> None:
    assert not lifecycle._lab_listens(LabPaths(tmp_path), listener)
    assert not lifecycle._lab_listens(LabPaths(tmp_path), free_port())
