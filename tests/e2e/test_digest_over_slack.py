"""The weekly IT digest over Slack: one message within Block Kit's limits, then the full table
(CSV) and the chart (PNG) through Slack's external file upload."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from bot import digest, jobs
from bot.clock import ManualClock
from bot.runtime import Runtime
from bot.server import BotServer
from bot.slacksim.blockkit import validate_blocks
from bot.slacksim.server import Message, SharedFile, SlackSim
from tests.test_digest import add_products

IT = "CIT00001"


def digest_message(slack: SlackSim) -> Message | None:
    found = [m for m in slack.messages_in(IT) if "Weekly license digest" in m.text and m.blocks]
    return found[-1] if found else None


def test_the_digest_of_500_products_reaches_it_with_its_csv_and_chart(
    slack: SlackSim, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    add_products(runtime, 496)  # and the sample company's 4: 500 products
    assert jobs.JOBS["digest"].run(runtime, clock.now()) is True
    assert jobs.JOBS["digest"].run(runtime, clock.now()) is False  # once a week

    message = slack.wait_for(lambda: digest_message(slack), timeout=20, what="the digest")
    assert len(message.blocks) <= 50 and validate_blocks(message.blocks) == []
    text = message.all_text
    assert "Top 15 products by idle cost" in text
    assert "more products with idle seats (see the attached CSV)" in text
    assert "over-assigned" in text and "compliance risk" in text
    assert "pending approval for more than 48 h" in text
    assert "Renewals in the next 60 days" in text
    # Every fifth generated product has no usage source: unknown, not idle.
    assert "Confidence: 400 of 1984 held seats (100 products) have no usage data" in text

    # One message per second in the IT channel: the files follow a second later.
    clock.advance(timedelta(seconds=2))
    files: list[SharedFile] = slack.wait_for(
        lambda: slack.files if len(slack.files) == 2 else None, timeout=20, what="the files"
    )
    table = next(f for f in files if f.name.endswith(".csv"))
    chart = next(f for f in files if f.name.endswith(".png"))
    assert {f.channel for f in files} == {IT}
    assert table.title.startswith("License digest") and "chart" not in table.title
    rows = list(csv.reader(io.StringIO(table.content.decode())))
    assert rows[0] == list(digest.CSV_COLUMNS)
    assert len(rows) == 501
    assert len({r[0] for r in rows[1:]}) == 500
    assert chart.content.startswith(b"\x89PNG\r\n\x1a\n")
    # Both files were shared in one message, with the comment introducing them.
    shared = slack.find_message(IT, files[0].message_ts or "")
    assert shared is not None and "every product's figures (500)" in shared.text
    assert [f["id"] for f in shared.to_api()["files"]] == [f.id for f in files]
    calls = [c.method for c in slack.calls if c.method.startswith(("files.", "upload"))]
    assert calls == [
        "files.getUploadURLExternal",
        "files.getUploadURLExternal",
        "upload",
        "upload",
        "files.completeUploadExternal",
    ]


def test_the_digest_says_when_nothing_is_known(
    slack: SlackSim, bot: BotServer, runtime: Runtime, clock: ManualClock
) -> None:
    # The sample company: no usage data anywhere, no seats held.
    assert jobs.JOBS["digest"].run(runtime, clock.now())
    message = slack.wait_for(lambda: digest_message(slack), timeout=20, what="the digest")
    assert "Confidence: no seats are held." in message.all_text
    assert "No idle seats this week." in message.all_text
