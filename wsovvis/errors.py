"""Exceptions that the CLI turns into one clear line and an exit code."""


class WsovvisError(Exception):
    """An error a user can act on; its message names the file and what is wrong."""

    exit_code = 1


class UsageError(WsovvisError):
    """Unusable arguments or configuration (exit 2, like argparse)."""

    exit_code = 2


class InputError(WsovvisError):
    """A data file that cannot be used as given."""


class RuntimeMissingError(WsovvisError):
    """A third-party runtime (CutLER, VNext, detectron2, torch) that a stage needs is not importable."""

    exit_code = 3


class StorageError(WsovvisError):
    """A storage location that cannot be used as a whole: S3 unreachable, not S3, refusing the credentials; a
    local folder missing, read-only or full (exit 5, as infrastructure faults of the launcher). Stages stop at
    once instead of failing every video; what they wrote before stays, and a rerun resumes."""

    exit_code = 5
