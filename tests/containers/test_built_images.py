"""What `make images` built: each image runs as its non-root user and keeps none of the CA certificates this
machine adds to its trust store (the intercepting proxy's, passed to the build as a secret)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.containers.conftest import docker

pytestmark = pytest.mark.containers
ADDED_CAS = Path("/usr/local/share/ca-certificates")
# where a CA certificate would be kept: the system store and Python's bundle
TRUST_STORES = [
    "/etc",
    "/usr/local/share",
    "/usr/share/ca-certificates",
    "/opt/venv/lib/python3.11/site-packages/certifi",
]


def certificate_lines(path: Path) -> list[str]:
    """The base64 lines of a PEM certificate: any one of them found in a file means the file holds it."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("-----")]


@pytest.fixture(params=["cpu_image", "serve_image"])
def image(request) -> str:
    return request.getfixturevalue(request.param)


def test_runs_as_a_non_root_user(image):
    user = docker("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    assert user.split(":")[0] not in {"", "0", "root"}, f"{image} runs as {user!r}"
    assert docker("run", "--rm", "--network=host", image, "id", "-u").stdout.strip() != "0"


def test_keeps_none_of_this_machines_added_cas(image):
    added = sorted(ADDED_CAS.glob("*.crt"))
    if not added:
        pytest.skip(f"this machine adds no CA certificate ({ADDED_CAS} is empty)")
    patterns = "\n".join(line for path in added for line in certificate_lines(path)[1:-1]) + "\n"
    search = f"grep -rlF -f /dev/stdin {' '.join(TRUST_STORES)} 2>/dev/null; true"
    found = docker("run", "--rm", "-i", "--network=host", image, "sh", "-c", search, input=patterns).stdout.split()
    assert found == [], f"{image} keeps an added CA certificate in {found}"
