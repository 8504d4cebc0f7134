"""Debian packages the platform uses (redis-server; chromium for the browser test), installed on
first use when we are root, with a clear error otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess

from recsys.infra.server import InfraError

__all__ = ["apt_install"]


def apt_install(*packages: str) -> None:
    """``apt-get install`` the packages (``apt-get update`` first if the lists are missing)."""
    names = " ".join(packages)
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise InfraError(
            f"{names} not installed and cannot be installed automatically here; "
            f"install with your package manager (Debian: sudo apt-get install {names})"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "--no-install-recommends", *packages]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run([apt, "update", "-q"], env=env, capture_output=True, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise InfraError(f"apt-get install {names} failed:\n{result.stderr[-2000:]}")
