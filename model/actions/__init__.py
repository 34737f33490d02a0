"""``rtdetr <action>`` implementations: each resolves its spec, then runs in its results folder."""
