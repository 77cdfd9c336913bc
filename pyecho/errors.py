"""The tool's own errors: bad input a user can fix, as opposed to bugs.

Every exception pyecho raises for something the user gave it (a parameter, an option, a file,
a dataset, an engine that cannot run here) is a :class:`PyechoError`; the command line prints
those as one line. Anything else escaping a command is a bug, reported as such.
"""
from __future__ import annotations


class PyechoError(Exception):
    """Bad input the user can fix; the message names the parameter or file, the value and what is allowed."""


class ParameterError(PyechoError, ValueError):
    """A parameter or option is outside what is allowed."""


class InputFileError(PyechoError, ValueError):
    """A file or directory the user named is missing, unreadable or does not hold what is needed."""


class BackendUnavailable(PyechoError, RuntimeError):
    """The requested backend or device cannot run here; the message says why and what can."""
