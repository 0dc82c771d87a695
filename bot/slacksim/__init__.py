"""A local Slack look-alike for end-to-end tests and ``licensebot demo``.

``SlackSim`` plays Slack's Web API and response_url hooks; ``SlackSender`` plays Slack calling
the app (signed slash commands, interactions and events).
"""

from bot.slacksim.blockkit import validate_blocks, validate_view
from bot.slacksim.sender import SlackSender
from bot.slacksim.server import Call, Message, SlackSim, View

__all__ = [
    "Call",
    "Message",
    "SlackSender",
    "SlackSim",
    "View",
    "validate_blocks",
    "validate_view",
]
