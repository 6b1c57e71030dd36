"""The errors a user can fix: each is one line that says what is wrong and how to fix it.

``gantune`` prints them without a traceback and exits with status 2. Kept free of heavy imports
so that the command line can catch them before torch, Ray or MLflow load.
"""


class UsageError(ValueError):
    """Something the user typed or pointed at (a flag, a path, a URI, a run id) is wrong."""


class ConfigError(UsageError):
    """A trainer config or search preset key is wrong; the message names the key."""


class Unreachable(UsageError):
    """A server or cluster the user named does not answer; the message names the address."""


class UnsupportedVersion(UsageError):
    """An installed library lacks something gantune relies on; the message names the version and the fix."""


class UnreadableCheckpoint(UsageError):
    """A checkpoint file is missing, truncated or not gantune's; an older checkpoint may still serve."""
