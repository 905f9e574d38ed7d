"""A real JupyterLab driven in real Chromium."""
