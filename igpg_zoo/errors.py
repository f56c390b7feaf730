"""The one error hierarchy of igpg-zoo.

Every message names what happened and what to do next; the CLI prints it on one line
and exits with the class's ``exit_code``. Nothing else lives in this module.
"""


class ZooError(Exception):
    """Base of every error igpg-zoo raises on purpose."""

    exit_code = 1


# -- configuration and registry location ---------------------------------------------------


class ConfigError(ZooError):
    """The configuration (flags, environment, YAML) is invalid."""

    exit_code = 2


class RegistryUnavailable(ZooError):
    """The registry URL cannot be opened (unknown driver, unreachable server)."""

    exit_code = 2


# -- records ---------------------------------------------------------------------------------


class NotFound(ZooError):
    """A record, artifact or dataset does not exist."""

    exit_code = 3


class DuplicateCheckpoint(ZooError):
    """A record with the same identity already exists where a new one was required."""


class InvalidMetadata(ZooError):
    """Metadata given with a checkpoint has the wrong form or type."""

    exit_code = 2


# -- checkpoints -----------------------------------------------------------------------------


class CheckpointError(ZooError):
    """A checkpoint file cannot be read."""

    exit_code = 2


class UnsafeCheckpoint(CheckpointError):
    """A pickle needs code to load; it was refused and never executed."""


class CheckpointMismatch(CheckpointError):
    """The weights do not fit the architecture (missing / unexpected keys, wrong shapes)."""


# -- adapters --------------------------------------------------------------------------------


class UnknownArchitecture(ZooError):
    """No installed adapter supports an architecture string."""

    exit_code = 2


class ExportNotSupported(ZooError):
    """An adapter cannot export to the requested format."""

    exit_code = 2


class ExportParityError(ZooError):
    """An exported model disagrees with the PyTorch module beyond the tolerance."""


# -- data --------------------------------------------------------------------------------------


class DatasetError(ZooError):
    """A dataset is unknown, missing or malformed."""

    exit_code = 2


# -- generator ---------------------------------------------------------------------------------


class GeneratorError(ZooError):
    """The generator (tokenizer or prior) is missing, untrained or incompatible."""


class NothingToReturn(ZooError):
    """A query found nothing to retrieve and nothing can be generated."""


# -- integrity -------------------------------------------------------------------------------


class IntegrityError(ZooError):
    """The registry's database, blobs and index disagree; `igpg-zoo verify` lists how."""
