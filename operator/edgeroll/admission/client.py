"""The admission webhook's transport: one POST, no redirects followed, no proxy from the environment,
a deadline. A seam (`AdmissionTransport`) so reconciler tests swap it for a fake."""

from __future__ import annotations

import asyncio
from typing import Protocol

import aiohttp

from edgeroll.admission.review import AdmissionRequest, Unavailable, Verdict, interpret

MAX_ANSWER = 64 * 1024  # an answer is read only this far: the reason is cut to a few hundred characters


class AdmissionTransport(Protocol):
    async def post(self, request: AdmissionRequest, timeout: float) -> tuple[int, bytes]:
        """The answer's status and (the start of) its body; OSError or TimeoutError when there is none."""
        ...


class HttpAdmissionTransport:
    """aiohttp, one short-lived session per request: admission runs once per new digest, not per resync."""

    async def post(self, request: AdmissionRequest, timeout: float) -> tuple[int, bytes]:
        limit = aiohttp.ClientTimeout(total=timeout)
        # trust_env=False: an HTTP(S)_PROXY in the operator's environment must not reroute admission.
        async with (
            aiohttp.ClientSession(timeout=limit, trust_env=False) as session,
            session.post(
                request.url, data=request.body, headers=dict(request.headers), allow_redirects=False
            ) as answer,
        ):
            return answer.status, await answer.content.read(MAX_ANSWER)


async def ask(
    transport: AdmissionTransport, request: AdmissionRequest, timeout: float, secrets: list[bytes]
) -> Verdict:
    """The webhook's verdict; no answer at all is Unavailable, naming the error class only (the
    exception text may carry the URL's query, headers, or worse)."""
    try:
        status, body = await transport.post(request, timeout)
    except TimeoutError:
        return Unavailable(f"no answer within {timeout:g}s")
    except (OSError, aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
        return Unavailable(f"no answer: {type(exc).__name__}")
    return interpret(status, body, secrets)
