"""Real-browser tests: JupyterLab and Notebook 7 in headless Chromium (Playwright)."""
