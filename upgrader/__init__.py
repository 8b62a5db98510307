"""upgrader: patch the hosts of Pacemaker clusters without taking their containers down."""

__version__ = "0.1.0"
