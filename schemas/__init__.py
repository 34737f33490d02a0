"""Data package: the project's schemas/ folder, shipped in the wheel (see pyproject.toml, [tool.setuptools])."""
