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
