"""The one exception hierarchy. Each subclass's docstring is its default message."""

from __future__ import annotations

from typing import Any


class CompanyAgentsError(Exception):
    """Something went wrong."""

    code: str = "error"
    http_status: int = 500

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ConfigError(CompanyAgentsError):
    """The configuration is invalid."""

    code = "config_error"


class IsolationUnavailable(ConfigError):
    """No way to isolate agents on this machine, and running them unisolated was not asked for."""

    code = "isolation_unavailable"


class MasterKeyError(ConfigError):
    """The master key is missing, unreadable or unsafe."""

    code = "master_key_error"


class DatabaseError(CompanyAgentsError):
    """The database could not be used."""

    code = "database_error"
    http_status = 503


class DatabaseUnavailable(DatabaseError):
    """The database is not reachable."""

    code = "database_unavailable"


class UnsupportedDatabase(DatabaseError):
    """The database server is not supported."""

    code = "unsupported_database"


class EmbeddedDatabaseError(DatabaseError):
    """The embedded PostgreSQL server could not be started."""

    code = "embedded_database_error"


class SchemaOutOfDate(DatabaseError):
    """The database schema is not at the version this program needs."""

    code = "schema_out_of_date"


class NotFound(CompanyAgentsError):
    """The requested object does not exist."""

    code = "not_found"
    http_status = 404


class Conflict(CompanyAgentsError):
    """The request conflicts with the current state."""

    code = "conflict"
    http_status = 409


class InvalidInput(CompanyAgentsError):
    """The input is invalid."""

    code = "invalid_input"
    http_status = 422


class AmbiguousId(InvalidInput):
    """That id prefix matches several rows; give more characters."""

    code = "ambiguous_id"


class IllegalTransition(Conflict):
    """The task cannot move to that state from its current one."""

    code = "illegal_transition"


class StaleFencingToken(Conflict):
    """The fencing token is stale: another attempt owns this task, or the lease is gone."""

    code = "stale_fencing_token"


class Unauthorized(CompanyAgentsError):
    """Missing or unknown credentials."""

    code = "unauthorized"
    http_status = 401


class Forbidden(CompanyAgentsError):
    """These credentials may not act on that object."""

    code = "forbidden"
    http_status = 403


class ArchiveError(InvalidInput):
    """The archive is not a valid Company Agents export or backup."""

    code = "archive_invalid"


class TargetNotEmpty(Conflict):
    """The target database already holds data."""

    code = "target_not_empty"


class OrchestratorRunning(Conflict):
    """An orchestrator is using the target database."""

    code = "orchestrator_running"


class ImportVerificationFailed(DatabaseError):
    """The imported data does not match the archive; nothing was committed."""

    code = "import_verification_failed"
    http_status = 500


class MemoryAccessDenied(Forbidden):
    """This agent may not read or write that memory scope."""

    code = "memory_access_denied"


class MasterKeyMismatch(MasterKeyError):
    """The master key is not the one this database belongs to (its secrets, MACs and seals)."""

    code = "master_key_mismatch"


class SecretDecryptError(CompanyAgentsError):
    """A secret could not be decrypted: wrong master key, or the stored ciphertext was altered."""

    code = "secret_decrypt_error"


class AuditTampered(CompanyAgentsError):
    """The audit trail does not verify: an event or seal was changed, deleted, reordered or inserted."""

    code = "audit_tampered"
    http_status = 409


class PayloadTooLarge(InvalidInput):
    """The request body is larger than this endpoint accepts."""

    code = "payload_too_large"
    http_status = 413


class ApprovalClosed(Conflict):
    """The approval was already answered or has expired: a decision is made once."""

    code = "approval_closed"
