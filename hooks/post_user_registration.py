# /// script
# dependencies = []
# [tool.hookengine]
# trigger = "post-user-registration"
# secrets = []
# ///
"""Log a notification line for each new user; the response of this trigger is ignored.

A real hook would post to a chat or CRM here (declare `requests` and the webhook URL as a
secret); this one only prints, which is the hook's log.
"""


def post_user_registration(user, context):
    connection = optional(optional(context, "connection", {}), "name", "unknown")
    print("New user " + str(optional(user, "id", "?")) + " <" + str(optional(user, "email", "?"))
          + "> registered on " + connection)
    return {"notified": True}


def optional(mapping, key, default):
    """Read a field that a payload may leave out, from a dict or the engine's read-only view."""
    try:
        value = mapping[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value
