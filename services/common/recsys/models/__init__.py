"""The model registry: versioned model directories, manifests and a `current` pointer per name.

The layout and the manifest are a contract between the pipelines that publish models and the
services that load them (docs/models.md). Light on purpose: serving images import it, so nothing
here imports torch, onnxruntime or the pipelines.
"""

from recsys.models.fallbacks import FALLBACKS_FILE, FALLBACKS_MODEL, FallbackLists
from recsys.models.manifest import MANIFEST_FILE, MANIFEST_FORMAT, Manifest, ModelFile
from recsys.models.registry import ModelRegistry, ModelVersion, RegistryError, Staging

__all__ = [
    "FALLBACKS_FILE",
    "FALLBACKS_MODEL",
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "FallbackLists",
    "Manifest",
    "ModelFile",
    "ModelRegistry",
    "ModelVersion",
    "RegistryError",
    "Staging",
]
