# /// script
# dependencies = []
# [tool.hookengine]
# trigger = "credentials-exchange"
# secrets = []
# ///
"""Add the client's plan from its metadata to the access token as a namespaced claim.

Only `scope` and namespaced claims (keys that are http/https URLs outside auth0.com) reach
the token, so the claim is "https://example.com/plan"; `scope` is passed through unchanged,
since leaving it out would drop every granted scope.
"""
PLAN_CLAIM = "https://example.com/plan"


def credentials_exchange(client, scope, audience, context):
    access_token = {"scope": scope}
    plan = optional(optional(client, "metadata", {}), "plan", None)
    if plan:
        access_token[PLAN_CLAIM] = plan
    print("Token for client " + str(optional(client, "id", "?")) + " to " + str(audience)
          + ", plan " + str(plan))
    return access_token


def optional(mapping, key, default):
    """Read a field that a payload may leave out, from a dict or the engine's read-only view."""
    try:
        value = mapping[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value
