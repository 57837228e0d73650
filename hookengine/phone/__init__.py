"""Phone MFA delivery: the pipeline behind POST /guardian/factors/phone/deliveries.

delivery.py runs the steps; ratelimit.py, idempotency.py, templates.py and providers.py each
own one of them.
"""
