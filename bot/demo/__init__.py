"""``licensebot demo``: the real bot, a local Slack and a page to drive both, in one process."""
