"""The one exception the sandbox core raises: an answer in Webflow's error body shape."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "bad_request", "not_found", "validation_error"]


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: list[Any] = details or []
        self.headers: dict[str, str] = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "externalReference": None,
            "details": self.details,
        }


def validation_error(message: str, details: list[Any] | None = None) -> ApiError:
    return ApiError(400, "validation_error", message, details)


def bad_request(message: str, details: list[Any] | None = None) -> ApiError:
    return ApiError(400, "bad_request", message, details)


def not_found(what: str, identifier: str, code: str = "resource_not_found") -> ApiError:
    return ApiError(404, code, f"Requested resource not found: {what} '{identifier}' not found")
