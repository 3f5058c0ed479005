"""pollnet: busy-polled non-blocking TCP with interchangeable transports."""

__version__ = "0.1.0"
