"""User-facing errors.

Every problem a user can fix (a wrong file, a missing variable, an unreachable bucket) is raised
as a :class:`GraphCastZeroError` whose message is one line naming the file and the fix. The
invoke tasks turn these into ``invoke.Exit(message)``: non-zero exit, no traceback.
"""


class GraphCastZeroError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class InputError(GraphCastZeroError, ValueError):
    """A file or option does not fit what the model or task needs."""


class CheckpointError(InputError):
    """A checkpoint file is truncated, not a GraphCast checkpoint, or misses keys."""


class FetchError(GraphCastZeroError):
    """The bucket or a mirror could not be reached or served a bad file."""


class DistributedError(GraphCastZeroError):
    """A process of a multi-process training job died or hung, so the job cannot go on."""
