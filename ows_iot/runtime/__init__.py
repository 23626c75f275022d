# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""In-process MQTT ingestion: server integration, leader election, checkpointed commits."""

from .server import post_load
