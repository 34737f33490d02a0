"""Data package: the project's configs/ folder, shipped in the wheel (see pyproject.toml, [tool.setuptools])."""
