"""The error tree. Services raise these; handlers and the CLI turn them into messages.

LicenseBotError                 anything licensebot refuses, with a message a person can act on
├── ConfigError                 a setting is missing or unusable; the message names the setting
├── InputError                  what someone typed or uploaded cannot be used as it is
│   ├── UnknownProduct          no catalog product has that ID (carries the closest matches)
│   ├── UnknownUser             the user is not in the directory
│   ├── CatalogError            the catalog file is malformed (nothing was loaded)
│   ├── DirectoryError          the directory CSV is malformed (nothing was imported)
│   ├── KeyImportError          the key file cannot be imported (nothing was imported)
│   └── BackupError             the backup file is unusable here (nothing was restored)
├── Conflict                    the action makes no sense in the current state
│   ├── DuplicateRequest        the same user already has a pending request for that product
│   ├── AlreadyHolds            the user already holds that product
│   └── AlreadyDecided          the approval step was already decided by someone
├── NotAllowed                  the person may not do that (decided from the database)
├── VaultError                  a stored key cannot be decrypted with the configured keys
└── ConnectorError              a usage connector stopped before the end; what it stored is kept
    └── ConnectorAuthError      the vendor refused the connector's token; names the setting
"""

from __future__ import annotations

from collections.abc import Sequence


class LicenseBotError(Exception):
    """Something licensebot refuses, with a message a person can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(LicenseBotError):
    """A setting is missing or unusable; the message names the setting."""


class InputError(LicenseBotError):
    """What someone typed or uploaded cannot be used as it is."""


class UnknownProduct(InputError):
    """No catalog product has that ID."""

    def __init__(self, product_id: str, suggestions: Sequence[str]) -> None:
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"There is no product `{product_id}` in the catalog.{hint}")
        self.product_id = product_id
        self.suggestions = list(suggestions)


class UnknownUser(InputError):
    """The user is not in the directory."""


class CatalogError(InputError):
    """The catalog file is malformed; nothing was loaded."""


class DirectoryError(InputError):
    """The directory CSV is malformed; nothing was imported."""


class KeyImportError(InputError):
    """The key file cannot be imported; nothing was imported."""


class BackupError(InputError):
    """The backup file is damaged or does not fit this database; nothing was restored."""


class Conflict(LicenseBotError):
    """The action makes no sense in the current state."""


class DuplicateRequest(Conflict):
    """The same user already has a pending request for that product."""

    def __init__(self, message: str, request_id: int) -> None:
        super().__init__(message)
        self.request_id = request_id


class AlreadyHolds(Conflict):
    """The user already holds that product."""


class AlreadyDecided(Conflict):
    """The approval step was already decided by someone."""


class NotAllowed(LicenseBotError):
    """The person may not do that."""


class VaultError(LicenseBotError):
    """A stored key cannot be decrypted with the configured encryption keys."""


class ConnectorError(LicenseBotError):
    """A usage connector stopped before the end of its pull; the pages it stored are kept."""


class ConnectorAuthError(ConnectorError):
    """The vendor refused the connector's credential; the message names the setting to fix."""
