"""What differs between the rclpy releases this package supports (Humble, Jazzy, Kilted).

Tested here: Kilted (rclpy 9.1.2) and Jazzy (rclpy 7.1.6) from PyPI wheels. Humble (rclpy 3.x) has no
wheels on PyPI; its one difference the nodes meet is handled below from its documented API.
"""

from __future__ import annotations

try:  # Iron and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks, UnsupportedEventTypeError
except ImportError:  # Humble: the same names lived in rclpy.qos_event
    from rclpy.qos_event import (PublisherEventCallbacks, SubscriptionEventCallbacks,  # type: ignore[no-redef]
                                 UnsupportedEventTypeError)

__all__ = ["PublisherEventCallbacks", "SubscriptionEventCallbacks", "UnsupportedEventTypeError"]
