"""Commands and images for the kind provider's containers: each command's failure says what failed, and
a single static (or libc-only) binary becomes an image on the edgeroll image's Debian base."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def run(argv: list[str], timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:4])} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


def binary_image(binary: Path, image: str, base_image: str) -> str:
    """`image`: `binary` as /usr/local/bin/<name>, its entrypoint, on `base_image`; built once per tag."""
    if run(["docker", "image", "inspect", image], check=False).returncode == 0:
        return image
    target = f"/usr/local/bin/{binary.name}"
    context = Path(os.environ.get("TMPDIR", "/tmp")) / f"edgeroll-image-{binary.name}-{os.getpid()}"
    context.mkdir(exist_ok=True)
    try:
        shutil.copy2(binary, context / binary.name)
        (context / "Dockerfile").write_text(
            f'FROM {base_image}\nCOPY {binary.name} {target}\nENTRYPOINT ["{target}"]\n'
        )
        run(["docker", "build", "-q", "-t", image, str(context)])
    finally:
        shutil.rmtree(context, ignore_errors=True)
    return image
