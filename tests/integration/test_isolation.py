"""One testbed never touches another's images: a build prunes only the superseded
images of its own tag (images/prune.sh, run by images/build.sh). Before, it pruned every
untagged image labelled as the testbed's, whatever project or tag built it."""
import subprocess
import uuid
from pathlib import Path

import docker
import pytest

REPO = Path(__file__).resolve().parents[2]


def build(client, repo_tag: str, tb_tag: str) -> str:
    """A one-layer image labelled like the testbed's, tagged repo_tag; returns its id."""
    dockerfile = f"FROM tb/base:bookworm\nLABEL org.hatestbed=1 org.hatestbed.tag={tb_tag} n={uuid.uuid4().hex}\n"
    out = subprocess.run(["docker", "build", "-q", "-t", repo_tag, "-"], input=dockerfile.encode(),
                         capture_output=True, check=True)
    return out.stdout.decode().strip()


def exists(client, image_id: str) -> bool:
    try:
        client.images.get(image_id)
        return True
    except docker.errors.ImageNotFound:
        return False


def test_a_build_prunes_only_its_own_tags_superseded_images():
    client = docker.from_env()
    try:
        client.images.get("tb/base:bookworm")
    except docker.errors.ImageNotFound:
        pytest.fail("tb/base:bookworm is not built: run `make images` first")
    mine, other = f"prune-mine-{uuid.uuid4().hex[:6]}", f"prune-other-{uuid.uuid4().hex[:6]}"
    ids = []
    try:
        # two builds under each tag: the first of each is now superseded (dangling)
        old_mine = build(client, f"tb/prune-test:{mine}", mine)
        new_mine = build(client, f"tb/prune-test:{mine}", mine)
        old_other = build(client, f"tb/prune-test:{other}", other)
        new_other = build(client, f"tb/prune-test:{other}", other)
        ids = [old_mine, new_mine, old_other, new_other]
        assert all(exists(client, i) for i in ids)
        subprocess.run(["bash", str(REPO / "images" / "prune.sh"), mine], check=True)
        assert not exists(client, old_mine), "this tag's superseded build was kept"
        assert exists(client, new_mine), "this tag's current build was removed"
        assert exists(client, old_other), "another testbed's untagged image was removed"
        assert exists(client, new_other)
    finally:
        for i in reversed(ids):
            try:
                client.images.remove(i, force=True)
            except docker.errors.APIError:
                pass
