"""The browser dashboard (Plotly Dash), served beside the query API on the UI port.

Talks to the query API only (through `tracehouse.query.client`), never to storage.
"""

from tracehouse.dashboard.app import mount_dashboard

__all__ = ["mount_dashboard"]
