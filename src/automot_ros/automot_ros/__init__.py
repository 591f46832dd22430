"""automot: an onboard ROS 2 driving stack for the AutoMoT vision-language-action model.

The library (``model``, ``runtime``, ``data``, ``eval``) imports no ROS; ``ros`` holds the
message conversions and ``nodes`` the thin node adapters.
"""

__version__ = "0.1.0"
