"""The Zoo's generator artifacts (tokenizers, priors): tensors as a content-addressed blob, config and
provenance as JSON in the registry's artifacts table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from igpg_zoo.errors import InvalidMetadata, NotFound
from igpg_zoo.records import Artifact
from igpg_zoo.registry.metadata import require_json

if TYPE_CHECKING:
    import torch


class _Blob(NamedTuple):
    sha256: str
    data: bytes


class ZooArtifacts:
    """Mixed into ``Zoo``, which provides ``blobs``, ``artifacts``, ``_writable``, ``_rewrite_missing`` and
    ``_drop_unused``."""

    def add_artifact(self, kind: str, name: str, tensors: dict[str, torch.Tensor], config: dict[str, Any],
                     provenance: dict[str, Any], parent_id: int | None = None, reuse_newest: bool = False) -> Artifact:
        """Store a generator artifact: tensors as a blob, config and provenance as JSON.

        ``reuse_newest``: when the newest artifact of ``kind`` holds the same tensors under the same parent,
        return it rather than add a row (a training re-run after an interruption registers its result once).
        """
        from igpg_zoo.registry.checkpoint_io import canonical_bytes, sha256

        if not isinstance(kind, str) or not kind.isidentifier():
            raise InvalidMetadata(f"artifact kind must be a word such as 'tokenizer' or 'prior', got {kind!r}")
        require_json(config, "artifact config")
        require_json(provenance, "artifact provenance")
        self._writable()
        data = canonical_bytes(tensors)
        digest = sha256(data)
        created = [digest] if self.blobs.write(digest, data) else []
        newest = self._newest_artifact(kind) if reuse_newest else None
        if newest is not None and (newest.sha256, newest.parent_id) == (digest, parent_id):
            return newest  # its blob is the one just checked (or written back, had it gone missing)
        blob = _Blob(digest, data)
        try:
            return self.artifacts.insert(kind, name, digest, len(data), config, provenance, parent_id,
                                         in_lock=lambda: created.extend(self._rewrite_missing([blob])))
        except BaseException:
            self._drop_unused(created)
            raise

    def _newest_artifact(self, kind: str) -> Artifact | None:
        try:
            return self.artifacts.get(None, kind)
        except NotFound:
            return None

    def get_artifact(self, id: int | None = None, kind: str = "tokenizer") -> Artifact:
        return self.artifacts.get(id, kind)

    def load_artifact(self, artifact: Artifact | int) -> dict[str, torch.Tensor]:
        if not isinstance(artifact, Artifact):
            artifact = self.artifacts.get(artifact)
        return self.blobs.load(artifact.sha256)

    def list_artifacts(self, kind: str | None = None) -> list[Artifact]:
        return self.artifacts.list(kind)
