"""Exceptions that corolla raises for problems a user can fix."""


class CorollaError(Exception):
    """Base class: a problem with the user's config, data, plugins or files."""


class ConfigError(CorollaError):
    """A config file or override is invalid. The message names the key path."""


class PluginError(CorollaError):
    """A plugin failed to import or register, or two plugins conflict."""


class UnknownComponentError(CorollaError):
    """A config names a component that no plugin provides."""


class ComponentArgumentError(ConfigError, ValueError):
    """A component was given arguments its signature does not accept, or values it rejects."""


class DataError(CorollaError):
    """A data file (list file, image, label file) is missing or malformed."""


class WeightsError(CorollaError):
    """A weights file cannot be found, downloaded or safely read, or does not fit the model."""


class CorollaDeprecationWarning(DeprecationWarning):
    """A deprecated name (an :class:`~corolla.plugin.registry.Alias`) was used. The command
    line shows these, though Python hides a DeprecationWarning outside ``__main__``."""
