"""SlackSim's external file upload (files_upload_v2): shapes, the bytes, and the errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.slacksim import SlackSim


@pytest.fixture
def sim() -> Iterator[SlackSim]:
    with SlackSim() as sim:
        sim.add_user("U1", name="alice")
        sim.add_channel("CIT", name="it")
        sim.add_channel("CNOTIN", name="elsewhere", members=["U1"])
        yield sim


@pytest.fixture
def client(sim: SlackSim) -> WebClient:
    return WebClient(token=sim.bot_token, base_url=sim.api_url)


def api_error(call: Any) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as info:
        call()
    return dict(info.value.response.data)  # type: ignore[arg-type]


def test_files_upload_v2_shares_every_file_in_one_message(sim: SlackSim, client: WebClient) -> None:
    response = client.files_upload_v2(
        file_uploads=[
            {"filename": "table.csv", "content": "a,b\n1,2\n", "title": "The table"},
            {"filename": "chart.png", "content": b"\x89PNG\r\n\x1a\nxx", "title": "The chart"},
        ],
        channel="CIT",
        initial_comment="This week's figures",
    )
    assert response["ok"] is True
    assert [f["title"] for f in response["files"]] == ["The table", "The chart"]
    files = sim.files
    assert [(f.name, f.title, f.channel) for f in files] == [
        ("table.csv", "The table", "CIT"),
        ("chart.png", "The chart", "CIT"),
    ]
    assert files[0].content == b"a,b\n1,2\n" and files[1].content.startswith(b"\x89PNG")
    (message,) = sim.messages_in("CIT")
    assert message.text == "This week's figures" and message.ts == files[0].message_ts
    shared = message.to_api()["files"]
    assert [(f["id"], f["mimetype"], f["size"]) for f in shared] == [
        (files[0].id, "text/csv", 8),
        (files[1].id, "image/png", 10),
    ]


def test_get_upload_url_shape_and_errors(sim: SlackSim, client: WebClient) -> None:
    got = client.files_getUploadURLExternal(filename="a.csv", length=3)
    assert got["ok"] is True and str(got["file_id"]).startswith("F")
    assert str(got["upload_url"]).startswith(sim.base_url + "/upload/v1/")
    assert api_error(lambda: client.api_call("files.getUploadURLExternal", params={"length": 3}))[
        "error"
    ] == ("invalid_arguments")
    too_long = api_error(
        lambda: client.files_getUploadURLExternal(filename="a.png", length=3, alt_txt="x" * 1001)
    )
    assert too_long["error"] == "alt_txt_too_large"


def test_the_upload_url_takes_exactly_the_length_announced(
    sim: SlackSim, client: WebClient
) -> None:
    got = client.files_getUploadURLExternal(filename="a.csv", length=3)
    short = httpx.post(str(got["upload_url"]), content=b"ab")
    assert short.status_code == 400
    # Not uploaded: completing it is refused and nothing is shared.
    error = api_error(
        lambda: client.files_completeUploadExternal(
            files=[{"id": str(got["file_id"]), "title": "a"}], channel_id="CIT"
        )
    )
    assert error["error"] == "file_not_found"
    # A multipart form works as well as raw bytes.
    assert httpx.post(str(got["upload_url"]), files={"file": ("a.csv", b"abc")}).status_code == 200
    client.files_completeUploadExternal(files=[{"id": str(got["file_id"])}], channel_id="CIT")
    assert [(f.content, f.title) for f in sim.files] == [(b"abc", "a.csv")]
    # Completed once: a second completion is refused.
    again = api_error(
        lambda: client.files_completeUploadExternal(
            files=[{"id": str(got["file_id"])}], channel_id="CIT"
        )
    )
    assert again["error"] == "file_not_found"
    assert httpx.post(sim.base_url + "/upload/v1/unknown", content=b"abc").status_code == 404


def test_completion_checks_the_channel(sim: SlackSim, client: WebClient) -> None:
    def upload() -> str:
        got = client.files_getUploadURLExternal(filename="a.csv", length=1)
        assert httpx.post(str(got["upload_url"]), content=b"x").status_code == 200
        return str(got["file_id"])

    assert (
        api_error(
            lambda: client.files_completeUploadExternal(files=[{"id": upload()}], channel_id="X1")
        )["error"]
        == "channel_not_found"
    )
    assert (
        api_error(
            lambda: client.files_completeUploadExternal(
                files=[{"id": upload()}], channel_id="CNOTIN"
            )
        )["error"]
        == "not_in_channel"
    )
    # Without a channel the file stays private: recorded, no message.
    client.files_completeUploadExternal(files=[{"id": upload()}])
    assert [f.channel for f in sim.files] == [None] and sim.messages == []


def test_files_need_the_files_write_scope() -> None:
    with SlackSim(scopes=["commands", "chat:write"]) as sim:
        client = WebClient(token=sim.bot_token, base_url=sim.api_url)
        with pytest.raises(SlackApiError) as info:
            client.files_upload_v2(filename="a.csv", content="x", channel="CIT")
        assert info.value.response["error"] == "missing_scope"
        assert info.value.response["needed"] == "files:write"


def test_a_failed_upload_stops_files_upload_v2(sim: SlackSim, client: WebClient) -> None:
    sim.fail_next("files.completeUploadExternal", status=200, error="channel_not_found")
    with pytest.raises((SlackApiError, SlackRequestError)):
        client.files_upload_v2(filename="a.csv", content="x", channel="CIT")
    assert sim.files == []
