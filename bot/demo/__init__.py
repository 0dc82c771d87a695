"""``licensebot demo``: the real bot, a local Slack and a page to drive both, in one process."""

from pathlib import Path

# The CLI's defaults (bot/cli.py reads them without importing the demo's Slack side).
DEFAULT_DIR = Path("licensebot-demo")
DEFAULT_PORT = 3000
