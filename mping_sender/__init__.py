"""mping-sender: a hardened multicast test source (one mping datagram per period)."""

__version__ = "1.1.0"
