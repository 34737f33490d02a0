"""One trial as a process tree: launch `rtdetr <action>`, tail its status.json, classify failures,
hand out devices."""

__all__: list[str] = []
