"""The two ways a run can fail, and the exit code each one means to the SDK's user."""


class CredprocError(Exception):
    """Credentials could not be obtained (STS refused, network down, IdP failed): exit 1."""

    exit_code = 1


class ConfigError(CredprocError):
    """The command line or a connection definition is wrong: exit 2."""

    exit_code = 2
