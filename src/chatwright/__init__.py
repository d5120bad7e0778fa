"""chatwright: knowledge-grounded, task-capable assistants that run offline on small hardware."""

__version__ = "0.1.0"
