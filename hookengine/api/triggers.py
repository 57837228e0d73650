"""Placeholder until the triggers endpoints land."""

from flask import Blueprint

bp = Blueprint("triggers", __name__, url_prefix="/api/v2")
