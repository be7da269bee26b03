"""Every exception the client raises, in one tree.

    TuneError                       base of everything below
    ├── TuneConfigError (ValueError)    bad input found before any work starts:
    │   ├── SearchSpaceError            a malformed param_space
    │   ├── NotSerializableError        a trainable or object cloudpickle rejects
    │   └── StorageError                a storage path that can't be reached
    ├── ClusterError                    the head can't be reached or refused us
    │   └── AuthenticationError         wrong or missing cluster token
    ├── RestoreError                    an experiment folder that can't be restored
    └── TrialError                      what a failed trial reports in Result.error

Messages name the cause and the fix.
"""

from __future__ import annotations


class TuneError(Exception):
    """Base of every error this package raises."""


class TuneConfigError(TuneError, ValueError):
    """Input that cannot work, found before any trial starts."""


class SearchSpaceError(TuneConfigError):
    """A param_space entry that cannot be sampled or stored."""


class NotSerializableError(TuneConfigError):
    """A trainable or with_parameters object that cannot be pickled."""


class StorageError(TuneConfigError):
    """A storage path that cannot be reached or written."""


class ClusterError(TuneError):
    """The head cannot be reached, or it refused a request."""


class AuthenticationError(ClusterError):
    """The head rejected the cluster token."""


class RestoreError(TuneError):
    """An experiment folder that is missing, damaged or not an experiment."""


class TrialError(TuneError):
    """A trial that failed; the message holds the trial's traceback."""

    def __init__(self, message: str, *, trial_id: str = "") -> None:
        super().__init__(message)
        self.trial_id = trial_id

    def __reduce__(self):
        return (_rebuild_trial_error, (str(self), self.trial_id))


def _rebuild_trial_error(message: str, trial_id: str) -> TrialError:
    return TrialError(message, trial_id=trial_id)
