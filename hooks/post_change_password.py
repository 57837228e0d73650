# /// script
# dependencies = []
# [tool.hookengine]
# trigger = "post-change-password"
# secrets = []
# ///
"""Log a notification line when a user changes their password; the response is ignored.

A real hook would e-mail the user here so an unexpected change gets noticed.
"""


def post_change_password(user, context):
    connection = optional(optional(context, "connection", {}), "name", "unknown")
    print("Password changed for user " + str(optional(user, "id", "?")) + " <"
          + str(optional(user, "email", "?")) + "> on " + connection + " at "
          + str(optional(user, "last_password_reset", "an unknown time")))
    return {"notified": True}


def optional(mapping, key, default):
    """Read a field that a payload may leave out, from a dict or the engine's read-only view."""
    try:
        value = mapping[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value
