"""Storage errors: one small hierarchy, each carrying enough context to act on."""


class StorageError(Exception):
    """Base of every error raised by `tracehouse.storage`."""


class StoreUnavailable(StorageError):
    """The store could not be reached or refused the operation; retrying later may work."""


class StoreBusy(StoreUnavailable):
    """The store is short of memory (or of parts, or of query slots) for this operation right
    now: it may well succeed alone, in a moment, without waiting for the store to come back."""


class StoreRejected(StorageError):
    """The store refused the data itself (it would refuse it again): do not retry it."""


class InvalidQuery(StorageError):
    """A read the store refuses because of what was asked (e.g. a regex that does not compile)."""


class StoreLocked(StorageError):
    """The embedded store's data directory is owned by another process."""


class ConfigError(StorageError, ValueError):
    """A storage setting is wrong; the message names the setting."""
