#!/usr/bin/env python3
"""Write images as one `docker save` archive that `kind build node-image --type file` reads right.

kind takes an archive's image names from its first `manifest.json` or `repositories` member
and pulls every image it needs that is not named there. Docker shortens `docker.io/kindest/x`
to `kindest/x` and writes `repositories` last, so kind would not recognise such an image and
would try to pull it. This rewrites the archive with a `repositories` member first that names
every image exactly as given.

usage: image-tar.py OUT.tar IMAGE [IMAGE ...]
"""

import io
import json
import subprocess
import sys
import tarfile
import tempfile


def main(out: str, images: list[str]) -> None:
    with tempfile.TemporaryFile() as saved:
        subprocess.run(["docker", "save", *images], stdout=saved, check=True)
        saved.seek(0)
        with tarfile.open(fileobj=saved) as src, tarfile.open(out, "w") as dst:
            members = src.getmembers()
            manifest = json.load(src.extractfile("manifest.json"))  # type: ignore[arg-type]
            repositories: dict[str, dict[str, str]] = {}
            for image in images:
                repo, tag = image.rsplit(":", 1)
                # The value is the image's top layer; kind reads only the names.
                top = next(m["Layers"][-1].split("/")[0] for m in manifest if _named(m, image))
                repositories.setdefault(repo, {})[tag] = top
            data = json.dumps(repositories).encode()
            info = tarfile.TarInfo("repositories")
            info.size, info.mode = len(data), 0o644
            dst.addfile(info, io.BytesIO(data))
            for member in members:
                if member.name != "repositories":
                    dst.addfile(member, src.extractfile(member) if member.isfile() else None)


def _named(entry: dict[str, list[str]], image: str) -> bool:
    short = image.removeprefix("docker.io/").removeprefix("library/")
    return any(tag in (image, short) for tag in entry.get("RepoTags") or [])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
