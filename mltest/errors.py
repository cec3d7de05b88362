"""The one small exception hierarchy. Messages name the file, key or check and say what to do."""


class MltestError(Exception):
    """Base of every error mltest raises on purpose; its message is shown to the user as is."""


class ConfigError(MltestError):
    """The config file is missing, malformed, or holds an unknown or wrongly typed key."""


class ProjectError(MltestError):
    """The user's model or data module could not be imported or built."""


class BaselineError(MltestError):
    """A baseline or golden file is missing, unreadable or of another format."""


class CheckTimeout(MltestError):
    """A check ran past its wall-clock time budget."""


class CheckFailed(MltestError):
    """Raised by shared helpers to fail the running check with a diagnosis.

    The runner reports it as a failure (not an error): the user's change broke something.
    """

    def __init__(self, summary: str, *, details: str = "", hint: str = ""):
        super().__init__(summary)
        self.summary = summary
        self.details = details
        self.hint = hint
