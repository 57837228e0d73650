"""Placeholder until the runs endpoints land."""

from flask import Blueprint

bp = Blueprint("runs", __name__, url_prefix="/api/v2")
