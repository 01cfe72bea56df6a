"""Wording of Entra's provisioning log: error reasons (gallery and custom styles) and skip texts."""

from __future__ import annotations

import json

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
_EXCEPTION = ("Processing of the HTTP request resulted in an exception. Please see the HTTP response "
              "returned by the 'Response' property of this exception for details.")
_STATUS_WORDS = {400: "BadRequest", 401: "Unauthorized", 409: "Conflict", 429: "TooManyRequests",
                 500: "InternalServerError"}

# (errorCode, errorCategory) for each failure Entra logs in this simulation.
CODES = {
    "conflict_gallery": ("LeapsomeEntryConflict", "nonServiceFailure"),
    "conflict_custom": ("SystemForCrossDomainIdentityManagementServiceIncompatibleFiltering",
                        "nonServiceFailure"),
    "bad_request": ("SystemForCrossDomainIdentityManagementBadRequest", "nonServiceFailure"),
    "throttled": ("TooManyRequests", "failure"),
    "credential": ("SystemForCrossDomainIdentityManagementCredentialValidationFailure", "nonServiceFailure"),
    "timeout": ("Timeout", "failure"),
}


def web_response(status: int, scim_type: str | None, detail: str, numeric: bool) -> str:
    """The SCIM error body as the server sent it (status as a string, or a number on some servers)."""
    body: dict = {"schemas": [SCIM_ERROR], "status": status if numeric else str(status)}
    if scim_type:
        body["scimType"] = scim_type
    body["detail"] = detail
    return json.dumps(body, separators=(",", ":"))


def custom_reason(status: int, scim_type: str | None, detail: str, numeric: bool, retried: int,
                  retry_at: str) -> str:
    """Custom-SCIM style reason embedding the Web Response and the retry date."""
    return (f"StatusCode: {_STATUS_WORDS[status]} Message: {_EXCEPTION} Web Response: "
            f"{web_response(status, scim_type, detail, numeric)}. This operation was retried {retried} "
            f"times. It will be retried again after this date: {retry_at} UTC")


def gallery_conflict_reason(app_name: str) -> str:
    return (f"Message: {app_name} returned an error response with the HTTP status code 409.  This "
            "response indicates that a user or a group already exisits with the same name. If you are "
            "using the default attribute mappings, please ensure that the user or group matching "
            "attributes are unique.")


def timeout_reason(app_name: str, retried: int, retry_at: str) -> str:
    return (f"The operation timed out while waiting for a response from {app_name}. This operation was "
            f"retried {retried} times. It will be retried again after this date: {retry_at} UTC")


_SKIP_REASONS = {
    "default_access": ["This object does not have required entitlement for provisioning. The user is "
                       "assigned only the 'Default Access' role, which is not provisioned."],
    "not_assigned": ["This object is not assigned to the application.",
                     "This object does not have required entitlement for provisioning."],
    "out_of_scope": ["This object does not match the scoping filters configured for the application."],
    "inactive": ["This object is not active in the source system.",
                 "This object does not have required entitlement for provisioning."],
    "no_change": ["No change is needed: the object in the target system already has the values "
                  "from the source system."],
}


def skip_reason(upn: str, category: str) -> str:
    """Provision-on-demand wording: "The User '...' will be skipped due to the following reasons: 1) ..."."""
    items = " ".join(f"{i}) {text}" for i, text in enumerate(_SKIP_REASONS[category], 1))
    return f"The User '{upn}' will be skipped due to the following reasons: {items}"
