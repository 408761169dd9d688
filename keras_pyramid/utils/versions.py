"""What a result was measured with: the installed versions, by
`importlib.metadata` (no import of the frameworks themselves)."""

import importlib.metadata
import platform

# Distribution names, in the order reports print them.
PACKAGES = ("keras", "numpy", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch",
            "tensorflow-datasets", "keras-tuner")


def installed(package):
    """The installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(packages=PACKAGES):
    """{"python": ..., package: version} for the installed packages of `packages`."""
    found = {"python": platform.python_version()}
    for package in packages:
        version = installed(package)
        if version is not None:
            found[package] = version
    return found
