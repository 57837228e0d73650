# /// script
# dependencies = []
# [tool.hookengine]
# trigger = "pre-user-registration"
# secrets = []
# ///
"""Refuse sign-ups from disposable email domains and set metadata on every other new user.

PreUserRegistrationError's first argument goes to the logs, the second is shown to the user.
Only `user_metadata` and `app_metadata` of the response are applied to the new user.
"""
BLOCKED_DOMAINS = ["mailinator.com", "guerrillamail.com", "10minutemail.com", "example.invalid"]


def pre_user_registration(user, context):
    email = optional(user, "email", "")
    domain = email.rpartition("@")[2].lower()
    if domain in BLOCKED_DOMAINS:
        raise PreUserRegistrationError("Denied sign-up of " + email + ": blocked domain " + domain,
                                       "Sign-ups with this email domain are not allowed.")
    connection = optional(optional(context, "connection", {}), "name", "unknown")
    language = optional(context, "requestLanguage", "en")
    print("Allowing sign-up of " + email + " on " + connection)
    return {"user": {
        "user_metadata": {"preferred_language": language},
        "app_metadata": {"plan": "free", "signup_connection": connection},
    }}


def optional(mapping, key, default):
    """Read a field that a payload may leave out, from a dict or the engine's read-only view."""
    try:
        value = mapping[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value
