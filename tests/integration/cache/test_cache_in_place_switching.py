"""In-place switching on a real `edgeroll cache` process against the lab's real S3 (SeaweedFS).

Revisions and the revision pointer are written as the operator writes them (publish/'s layout,
render/pointer.py's body and `signature-sha256` metadata) with the lab's real S3 client; the cache
is told to switch with `POST /-/revision` and must then serve, byte for byte, what the pointer names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cache_itkit import (
    NAMESPACE,
    SIGNING_KEY,
    CacheProcess,
    Published,
    cache_env,
    config_body,
    publish,
    unique,
)
from tests.polling import wait_until

from edgeroll.render.pointer import RevisionPointer, encode_pointer, pointer_key, sign_pointer
from edgeroll.render.signing import SIGNATURE_METADATA_KEY, verify

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CLUSTER = "edge-eu"


def put_pointer(
    lab: Any,
    key: str,
    name: str,
    revision: Published,
    *,
    signing_key: str = SIGNING_KEY,
    cluster: str = CLUSTER,
) -> None:
    """The pointer as the operator PUTs it: canonical JSON, `signature-sha256` = sign_pointer (hex)."""
    body = encode_pointer(RevisionPointer(NAMESPACE, name, cluster, revision.digest, revision.key))
    lab.s3_client().put_object(
        Bucket=lab.s3_bucket,
        Key=key,
        Body=body,
        ContentType="application/json",
        Metadata={SIGNATURE_METADATA_KEY: sign_pointer(signing_key.encode(), body)},
    )


def post_switch(cache: CacheProcess) -> tuple[int, dict[str, Any], dict[str, str]]:
    answer = cache.request("POST", "/-/revision")
    return answer.status, json.loads(answer.body), answer.headers


def configs(cache: CacheProcess, name: str, etag: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    answer = cache.request("GET", f"/configs/{NAMESPACE}/{name}", {"If-None-Match": etag} if etag else None)
    return answer.status, answer.body, answer.headers


def test_switch_in_place_and_back_and_refuse_a_tampered_pointer(
    lab: Any, s3_prefix: str, tmp_path: Path, home: Path, caches: list[CacheProcess]
) -> None:
    name = unique("router")
    rev1 = publish(lab, s3_prefix, name, config_body("v1"))
    rev2 = publish(lab, s3_prefix, name, config_body("v2"))
    key = pointer_key(f"{s3_prefix}/{NAMESPACE}/{name}", CLUSTER)
    put_pointer(lab, key, name, rev1)
    env = cache_env(lab, rev1, name, tmp_path / "state", home, EDGEROLL_CONFIG_POINTER_KEY=key)
    cache = CacheProcess(env, workdir=tmp_path)
    caches.append(cache)
    cache.start()
    wait_until(cache.ready, timeout=30, interval=0.05, message=lambda: f"cache ready\n{cache.log()}")
    status, body, headers = configs(cache, name)
    assert status == 200 and body == rev1.body
    etag1 = headers["etag"]

    # The pointer already names what is served.
    code, answer, headers = post_switch(cache)
    assert (code, answer) == (200, {"outcome": "unchanged", "serving": rev1.digest, "wanted": rev1.digest})
    assert headers["cache-control"] == "no-store" and headers["content-type"] == "application/json"

    # The operator moves the pointer, then POSTs.
    put_pointer(lab, key, name, rev2)
    code, answer, _ = post_switch(cache)
    assert (code, answer) == (200, {"outcome": "switched", "serving": rev2.digest, "wanted": rev2.digest})
    status, body, headers = configs(cache, name)
    assert status == 200 and body == rev2.body
    assert headers["x-config-digest"] == rev2.digest and headers["etag"] != etag1
    assert verify(SIGNING_KEY.encode(), body, headers["x-signature-sha256"])
    etag2 = headers["etag"]
    # A router revalidating with the old ETag gets the new revision, one with the new one a 304.
    status, body, headers = configs(cache, name, etag1)
    assert status == 200 and body == rev2.body and headers["etag"] == etag2
    assert configs(cache, name, etag2)[0] == 304
    assert cache.ready()
    revision = cache.request("GET", "/-/revision")
    assert json.loads(revision.body) == {"serving": rev2.digest, "wanted": rev2.digest}

    # And back.
    put_pointer(lab, key, name, rev1)
    code, answer, _ = post_switch(cache)
    assert (code, answer["outcome"], answer["serving"]) == (200, "switched", rev1.digest)
    status, body, headers = configs(cache, name, etag2)
    assert status == 200 and body == rev1.body and headers["etag"] == etag1

    # A pointer to rev2 signed with another key: refused, rev1 still served, still ready.
    put_pointer(lab, key, name, rev2, signing_key="not-the-signing-key-not-the-key!")
    code, answer, _ = post_switch(cache)
    assert code == 422 and answer["outcome"] == "refused" and answer["reason"] == "signature"
    assert (answer["serving"], answer["wanted"]) == (rev1.digest, rev1.digest)
    # A validly signed pointer of another cluster, copied to this cluster's key: refused too.
    put_pointer(lab, key, name, rev2, cluster="edge-us")
    code, answer, _ = post_switch(cache)
    assert (code, answer["reason"]) == (422, "cluster")
    status, body, _ = configs(cache, name)
    assert status == 200 and body == rev1.body and cache.ready()

    assert cache.metric("edgeroll_cache_switches_total", outcome="switched") == 2
    assert cache.metric("edgeroll_cache_switches_total", outcome="unchanged") == 1
    assert cache.metric("edgeroll_cache_switches_total", outcome="refused") == 2
    log = cache.log()
    assert f"switched in place from {rev1.digest} to {rev2.digest}" in log
    assert SIGNING_KEY not in log
    # The switched-to revision was stored: a restart serves it from the state dir.
    assert (tmp_path / "state" / "current.rev").read_bytes().endswith(rev1.body)


def test_a_missing_pointer_or_revision_is_unavailable(
    lab: Any, s3_prefix: str, tmp_path: Path, home: Path, caches: list[CacheProcess]
) -> None:
    name = unique("router")
    rev1 = publish(lab, s3_prefix, name, config_body("v1"))
    key = pointer_key(f"{s3_prefix}/{NAMESPACE}/{name}", CLUSTER)
    env = cache_env(lab, rev1, name, tmp_path / "state", home, EDGEROLL_CONFIG_POINTER_KEY=key)
    cache = CacheProcess(env, workdir=tmp_path)
    caches.append(cache)
    cache.start()
    wait_until(cache.ready, timeout=30, interval=0.05, message=lambda: f"cache ready\n{cache.log()}")
    code, answer, _ = post_switch(cache)  # no pointer in S3 yet
    assert (code, answer["outcome"], answer["reason"]) == (503, "unavailable", "not_found")
    # A pointer to a revision that was never published.
    never = Published(f"{s3_prefix}/{NAMESPACE}/{name}/never.json", "sha256:" + "ab" * 32, b"")
    put_pointer(lab, key, name, never)
    code, answer, _ = post_switch(cache)
    assert (code, answer["reason"], answer["serving"]) == (503, "not_found", rev1.digest)
    assert cache.ready() and configs(cache, name)[1] == rev1.body


def test_without_a_pointer_key_switching_is_disabled(
    lab: Any, s3_prefix: str, tmp_path: Path, home: Path, caches: list[CacheProcess]
) -> None:
    name = unique("router")
    rev1 = publish(lab, s3_prefix, name, config_body("v1"))
    cache = CacheProcess(cache_env(lab, rev1, name, tmp_path / "state", home), workdir=tmp_path)
    caches.append(cache)
    cache.start()
    code, answer, _ = post_switch(cache)
    assert code == 404 and answer["outcome"] == "disabled"
