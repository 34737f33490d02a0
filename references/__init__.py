"""Data package: the project's references/ folder, shipped in the wheel (see pyproject.toml, [tool.setuptools])."""
