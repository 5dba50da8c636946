"""thrifty's one exception hierarchy.

Vendor errors (onnx, torch, boto3, SQLAlchemy, HTTP clients) are translated into these at the
boundary that calls the vendor, with ``raise ThriftyError(...) from exc``. Every message names the
input that was wrong and says how to fix it.

    ThriftyError
    ├── ConfigError                 bad settings or a bad combination of options
    ├── NotFoundError               a named model / variant / plan / deployment does not exist
    ├── ConflictError               the thing is busy or already exists (a deploy of that name runs)
    ├── AccessError                 no / a wrong API token, or a role too low for the operation
    ├── NotAvailableError           an operation whose flow or data source is not installed yet
    ├── IngestError                 a model file that cannot be accepted
    │   ├── UnknownFormatError      not ONNX, PyTorch or a Hugging Face folder
    │   ├── CorruptModelError       truncated or fails validation
    │   ├── UnsafeModelError        unrestricted pickle, path traversal, symlink out of the folder
    │   └── ModelTooLargeError      above the configured size limit
    ├── StoreError                  the artifact store failed (disk, S3)
    │   └── IntegrityError          stored bytes do not match their sha256
    ├── OptimizeError               a technique failed on a model
    ├── BenchmarkError              a benchmark run failed
    ├── CatalogError                price data could not be fetched or parsed
    ├── PlanningError               no plan possible
    │   └── SloUnreachableError     no candidate meets the SLO (names the closest one)
    ├── ServingError                inference server / gateway failures
    │   └── InvalidRequestError     a request that does not match the model signature
    └── ProviderError               a deploy target failed
        ├── CredentialsError        missing or rejected credentials
        ├── QuotaExceededError      the cloud refused for quota
        ├── CapacityError           no capacity for the offer (try the next candidate)
        └── UnsupportedFeatureError a provider cannot do what was asked
"""

from __future__ import annotations


class ThriftyError(Exception):
    """Base class of every error thrifty raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} — {hint}" if hint else message)


class ConfigError(ThriftyError):
    pass


class NotFoundError(ThriftyError):
    pass


class ConflictError(ThriftyError):
    """The thing is busy or already exists: an operation on that deployment still runs."""


class AccessError(ThriftyError):
    """``status`` is 401 (no or a wrong token) or 403 (a token whose role is too low)."""

    def __init__(self, message: str, *, hint: str | None = None, status: int = 401) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class NotAvailableError(ThriftyError):
    """The operation needs a flow or data source this installation does not have yet."""


class IngestError(ThriftyError):
    pass


class UnknownFormatError(IngestError):
    pass


class CorruptModelError(IngestError):
    pass


class UnsafeModelError(IngestError):
    pass


class ModelTooLargeError(IngestError):
    pass


class StoreError(ThriftyError):
    pass


class IntegrityError(StoreError):
    pass


class OptimizeError(ThriftyError):
    pass


class BenchmarkError(ThriftyError):
    pass


class CatalogError(ThriftyError):
    pass


class PlanningError(ThriftyError):
    pass


class SloUnreachableError(PlanningError):
    pass


class ServingError(ThriftyError):
    pass


class InvalidRequestError(ServingError):
    pass


class ProviderError(ThriftyError):
    pass


class CredentialsError(ProviderError):
    pass


class PermissionDeniedError(CredentialsError):
    """The caller is known but lacks the role (HTTP 403): a role granted a moment ago may still be
    propagating, so a reader may ask again; a 401 (no or unknown credentials) never gets better."""


class QuotaExceededError(ProviderError):
    pass


class CapacityError(ProviderError):
    pass


class UnsupportedFeatureError(ProviderError):
    pass
